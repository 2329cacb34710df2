#!/usr/bin/env python3
"""Turns the built-in Rotten Tomatoes snippets (the `rotten-tomatoes` asset) into SFT data in
TRL's formats, for `zotune train --task sft`:

  OUT/chat-train.jsonl, OUT/chat-test.jsonl    {"messages": [user asks for the sentiment, assistant answers]}
  OUT/completion-train.jsonl, OUT/completion-test.jsonl   {"prompt": "Review: …\\nSentiment:", "completion": " positive"}

Snippets with a score of 0 are left out; the others are positive (> 0) or negative (< 0), shuffled
with a fixed seed; the first TRAIN go to the training files, the next TEST to the test files (no
snippet in both). Usage: scripts/sentiment-chat-data.py OUT [--train 1000] [--test 200]
"""
import argparse
import json
import os
import random

HOME = os.environ.get("ZOTUNE_HOME", os.path.expanduser("~/.cache/zotune"))
SNIPPETS = os.path.join(HOME, "assets", "rotten-tomatoes", "movieReviewSnippets_GroundTruth.txt")
QUESTION = "Is the sentiment of this movie review positive or negative? Answer with one word.\n\nReview: {}"


def labelled_snippets(path):
    """(text, "positive" | "negative") for every snippet with a non-zero score, in file order."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip("\r\n").split("\t", 2)
            if len(parts) != 3:
                raise SystemExit(f"{path}:{number}: expected id<TAB>score<TAB>text")
            score = float(parts[1])
            if score != 0:
                rows.append((parts[2].strip(), "positive" if score > 0 else "negative"))
    return rows


def write(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=200)
    args = parser.parse_args()
    if not os.path.exists(SNIPPETS):
        raise SystemExit(f"{SNIPPETS} is missing: run `zotune assets fetch rotten-tomatoes` first")
    rows = labelled_snippets(SNIPPETS)
    random.Random(2023).shuffle(rows)
    splits = {"train": rows[:args.train], "test": rows[args.train:args.train + args.test]}
    os.makedirs(args.out, exist_ok=True)
    for split, chosen in splits.items():
        write(os.path.join(args.out, f"chat-{split}.jsonl"),
              [{"messages": [{"role": "user", "content": QUESTION.format(text)},
                             {"role": "assistant", "content": label}]} for text, label in chosen])
        write(os.path.join(args.out, f"completion-{split}.jsonl"),
              [{"prompt": f"Review: {text}\nSentiment:", "completion": f" {label}"} for text, label in chosen])
    print(f"{args.out}: {len(splits['train'])} train / {len(splits['test'])} test snippets, "
          f"{sum(label == 'positive' for _, label in splits['train'])} positive in train")


if __name__ == "__main__":
    main()
