from mvsearch.cli.main import entry

entry()
