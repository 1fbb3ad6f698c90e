#!/usr/bin/python3
"""TOMS 799's revolve (Griewank & Walther 2000), transcribed from the paper's rules as a second,
independent implementation: prints the action trace for STEPS and SNAPS in rewind's wording, one
quoted string per line (tests/layers/revolve_14_3.inc is `revolve_trace.py 14 3`)."""
import sys


def trace(steps, snaps):
    check, capo, fine, turned = -1, 0, steps, False
    ch = [0] * snaps
    out = []
    while True:
        if fine - capo == 0:
            if check == -1 or capo == ch[0]:
                out.append("terminate")
                return out
            capo = ch[check]
            out.append(f"restore {capo} from slot {check}")
        elif fine - capo == 1:
            fine -= 1
            if check >= 0 and ch[check] == capo:
                check -= 1
            out.append(f"{'youturn' if turned else 'firsturn'} {capo}")
            turned = True
        elif check == -1 or ch[check] != capo:
            check += 1
            ch[check] = capo
            out.append(f"takeshot {capo} in slot {check}")
        else:
            ds = snaps - check
            reps, rng = 0, 1
            while rng < fine - capo:
                reps += 1
                rng = rng * (reps + ds) // reps
            b1 = rng * reps // (ds + reps)
            b2 = b1 * ds // (ds + reps - 1) if ds > 1 else 1
            b3 = 0 if ds == 1 else (b2 * (ds - 1) // (ds + reps - 2) if ds > 2 else 1)
            b4 = b2 * (reps - 1) // ds
            b5 = 0 if ds < 3 else (b3 * (ds - 2) // reps if ds > 3 else 1)
            old = capo
            if fine - capo <= b1 + b3:
                capo += b4
            elif fine - capo >= rng - b5:
                capo += b1
            else:
                capo = fine - b2 - b3
            if capo == old:
                capo = old + 1
            out.append(f"advance {old} -> {capo}")


if __name__ == "__main__":
    for line in trace(int(sys.argv[1]), int(sys.argv[2])):
        print(f'"{line}",')
