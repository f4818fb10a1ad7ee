"""The warm-session Python interpreter: runs cells in one namespace that lives as long as it does.

Started by the runner as `PYTHON -u -c <this file's text>` (so, as with any `-c` program, the import path
starts at the working folder, /workspace, and not at this file's folder), with two inherited pipes: WB_IN
carries one JSON line {"code": ...} per cell, WB_OUT gets {"status": N} when the cell ends. A cell's last
expression is printed (its repr) as at a prompt. Standard library only.
"""

import ast
import json
import os
import sys
import traceback


def main() -> None:
    requests = os.fdopen(int(os.environ["WB_IN"]), "rb", 0)
    replies = os.fdopen(int(os.environ["WB_OUT"]), "wb", 0)
    del os.environ["WB_IN"], os.environ["WB_OUT"]
    scope = {"__name__": "__main__", "__builtins__": __builtins__}
    sys.argv = ["<session>"]

    def run(code):
        tree = ast.parse(code, "<cell>")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), scope)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), scope)
            if value is not None:
                print(repr(value))

    while True:
        try:
            line = requests.readline()
        except KeyboardInterrupt:
            continue
        if not line:
            break
        status = 0
        try:
            run(json.loads(line)["code"])
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except KeyboardInterrupt:
            traceback.print_exc()
            status = 130
        except BaseException:
            traceback.print_exc()
            status = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        replies.write((json.dumps({"status": status}) + "\n").encode())


if __name__ == "__main__":
    main()
