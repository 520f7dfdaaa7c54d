from grid.cli import main

main(prog_name="hcld-grid")
