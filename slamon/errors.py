"""The exceptions slamon raises on purpose.

SlamonError
├── ConfigError      the configuration file or a key in it is wrong (exit 2)
├── UsageError       a command-line argument is wrong (exit 2)
├── DatabaseError    the database is unreachable, not migrated, or newer than this slamon (exit 2)
└── InputError       an input file cannot be read at all (exit 2); bad rows are reported, not raised

The CLI turns every SlamonError into one line on stderr and its exit code; anything else is a bug
and shows a traceback only with --debug.
"""


class SlamonError(Exception):
    exit_code = 1


class ConfigError(SlamonError):
    exit_code = 2


class UsageError(SlamonError):
    exit_code = 2


class DatabaseError(SlamonError):
    exit_code = 2


class InputError(SlamonError):
    exit_code = 2
