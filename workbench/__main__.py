"""`python -m workbench` is the `workbench` command (and `main` is its console script's entry).

A plain `workbench exec` goes to the project's sandbox service before click or anything heavy is
imported (`workbench.service.client`); every other command, and an exec the service hands back, is the
click CLI in `workbench.cli`.
"""

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["exec"]:
        from workbench.service.client import try_exec

        status = try_exec(args[1:])
        if status is not None:
            sys.exit(status)
    from workbench.cli import main as cli_main

    cli_main(args)


if __name__ == "__main__":
    main()
