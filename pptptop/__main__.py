from pptptop.cli import run

run()
