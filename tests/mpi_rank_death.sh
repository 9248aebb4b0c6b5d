#!/bin/sh
# A rank that dies in a task must end the job with a message and a non-zero status, not hang.
# usage: mpi_rank_death.sh MPIEXEC HELPER MODE   (MODE: kill, segv or exit)
mpiexec=$1 helper=$2 mode=$3
case $mode in
kill) expected="exited on signal 9" ;;            # Open MPI's own line: SIGKILL leaves no other
segv) expected="crashed with SIGSEGV while running a task" ;;
exit) expected="called exit() while running a task" ;;
*) echo "FAIL: unknown mode '$mode'"; exit 1 ;;
esac
out=$(timeout 120 "$mpiexec" -np 3 --oversubscribe --bind-to none "$helper" "$mode" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -eq 124 ]; then echo "FAIL: the job hung"; exit 1; fi
if [ "$rc" -eq 0 ]; then echo "FAIL: the job exited 0"; exit 1; fi
case $out in *survived*) echo "FAIL: rank 0 went on as if nothing happened"; exit 1;; esac
case $out in *"$expected"*) ;; *) echo "FAIL: no '$expected' in the output"; exit 1;; esac
echo "PASS: status $rc"
