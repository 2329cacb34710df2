"""What bench/hybrid_report.py and bench/population_report.py share: the machine lines and the
report's writing."""
import os


def machine_lines(out):
    """OUT_DIR/machine.txt's lines and a blank line (nothing when it is missing)."""
    path = os.path.join(out, "machine.txt")
    return [l.rstrip() for l in open(path)] + [""] if os.path.exists(path) else []


def write_report(out, lines):
    """Writes OUT_DIR/report.md and prints it."""
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
