import sys

from conformance.cluster.cli import main

sys.exit(main())
