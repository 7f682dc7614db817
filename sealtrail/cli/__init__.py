"""The ``sealtrail`` command line. Exit codes: 0 ok, 1 verification failed, 2 usage or I/O."""
