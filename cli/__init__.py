"""The ``recsys`` command line (click): ``recsys --help`` lists the commands."""
