from coachtrack.cli import main

main()
