#!/usr/bin/env python3
"""expect_output.py [--fails] --regex R -- COMMAND...: runs COMMAND and passes when both its
exit status and its output are right: status 0 (or, with --fails, a non-zero status that is
not a signal), and the output (stdout and stderr together) matching R (Python re, searched).
ctest's PASS_REGULAR_EXPRESSION alone ignores the status, so a program that printed its line
and then crashed would pass; the tests that check output go through this instead."""
import argparse
import re
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--fails", action="store_true", help="expect a non-zero exit status")
parser.add_argument("--regex", required=True)
parser.add_argument("command", nargs=argparse.REMAINDER)
args = parser.parse_args()
command = args.command[1:] if args.command[:1] == ["--"] else args.command
if not command:
    sys.exit("expect_output.py: no command")

done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
out = done.stdout.decode(errors="replace")
sys.stdout.write(out)
status = done.returncode
problems = []
if status < 0:
    problems.append(f"it was killed by signal {-status}")
elif args.fails and status == 0:
    problems.append("it exited 0, where a failure was expected")
elif not args.fails and status != 0:
    problems.append(f"it exited with status {status}")
if not re.search(args.regex, out):
    problems.append(f"its output does not match {args.regex!r}")
if problems:
    print(f"FAIL: {' '.join(command)}: " + "; ".join(problems))
    sys.exit(1)
print(f"PASS: status {status} and output as expected")
