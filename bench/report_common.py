"""What bench/hybrid_report.py and bench/population_report.py share: the machine lines, the
figure's finish and the report's writing."""
import os


def machine_lines(out):
    """OUT_DIR/machine.txt's lines and a blank line (nothing when it is missing)."""
    path = os.path.join(out, "machine.txt")
    return [l.rstrip() for l in open(path)] + [""] if os.path.exists(path) else []


def plot_run(by_x, by_time, xs, ts, ys, label):
    """One run's curve against x (steps or forwards) and against training time; past the
    colour cycle's ten colours, curves take another line style and marker so none share a look."""
    style = dict(marker="os^"[len(by_x.lines) // 10 % 3], linestyle=["-", "--", ":"][len(by_x.lines) // 10 % 3], label=label)
    by_x.plot(xs, ys, **style)
    by_time.plot(ts, ys, **style)


def finish_figure(figure, axes, metric, title, path):
    """Labels the (axis, x label) pairs, puts the legend on the last axis and saves the figure."""
    for axis, xlabel in axes:
        axis.set_xlabel(xlabel)
        axis.set_ylabel(f"held-out {metric}")
        axis.grid(alpha=0.3)
    axes[-1][0].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_report(out, lines):
    """Writes OUT_DIR/report.md and prints it."""
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
