import sys

from fsqd.cli import main

sys.exit(main())
