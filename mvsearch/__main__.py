from mvsearch.cli.main import main

main()
