import sys

from pptptop.cli import main

sys.exit(main())
