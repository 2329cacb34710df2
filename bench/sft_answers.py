#!/usr/bin/env python3
"""Summarizes a run's generations.jsonl (zotune train --task sft --generate-eval N): per
evaluation, the answers that equal their reference (case and surrounding space ignored), how
many answers are one of the references' words, and the most common answers.
Usage: bench/sft_answers.py RUN/generations.jsonl"""
import collections
import json
import sys


def main(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    references = {row["reference"].strip().lower() for row in rows}
    for evaluation in sorted({row["evaluation"] for row in rows}):
        answers = [row for row in rows if row["evaluation"] == evaluation]
        exact = sum(row["answer"].strip().lower() == row["reference"].strip().lower() for row in answers)
        on_format = sum(row["answer"].strip().lower() in references for row in answers)
        common = collections.Counter(row["answer"] for row in answers).most_common(3)
        print(f"evaluation {evaluation}: {exact}/{len(answers)} equal their reference, "
              f"{on_format} answer with a reference word; most common: {common}")


if __name__ == "__main__":
    main(sys.argv[1])
