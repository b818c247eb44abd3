"""The exit statuses of every pptptop command, once: BSD's sysexits.h, as tcpdump and most tools use them.

The ground floor: the CLI, the UI, the probe and the service mode all return these.
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_USAGE: Final = 64  # EX_USAGE: options that cannot go together, a bad value
EXIT_BAD_INPUT: Final = 65  # EX_DATAERR: a corrupt or truncated capture
EXIT_NO_INPUT: Final = 66  # EX_NOINPUT: no such file or interface, nothing to export
EXIT_NO_USER: Final = 67  # EX_NOUSER: -Z names no such user
EXIT_NO_HOST: Final = 68  # EX_NOHOST: the probe's server name does not resolve
EXIT_UNAVAILABLE: Final = 69  # EX_UNAVAILABLE: an interface, port or probe step that cannot be used
EXIT_SOFTWARE: Final = 70  # EX_SOFTWARE: a bug
EXIT_CANT_CREATE: Final = 73  # EX_CANTCREAT: an output file that cannot be created
EXIT_NO_PERMISSION: Final = 77  # EX_NOPERM
