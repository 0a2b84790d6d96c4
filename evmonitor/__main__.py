from evmonitor.cli import main

main()
