from mvsearch.cli import main

main()
