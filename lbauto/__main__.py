from lbauto.cli import main

main()
