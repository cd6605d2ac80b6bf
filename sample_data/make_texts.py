"""Regenerate sample_data/texts.jsonl: a small text corpus for `dataselect embed --text-column`.

Writes texts.jsonl, one JSON object a line with
  id     "t0000", "t0001", …
  text   a short English sentence
  label  its topic (cooking, football, astronomy, finance, programming, gardening, medicine, travel)
  pair   "p01".."p12" for the two members of a hand-written paraphrase pair, else null

288 sentences are filled into per-topic templates (seeded, so the file is the same every time);
24 are the paraphrase pairs, written by hand, placed at fixed positions. The tests check that each
pair's two sentences are nearer to each other than to the members of every pair of another topic,
for both encoders.

Run: .venv/bin/python sample_data/make_texts.py   (standard library only)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
SEED = 0
PER_TOPIC = 36

PAIRS = [
    ("cooking", "Preheat the oven to 200 degrees and bake the bread for thirty minutes.",
     "Bake the bread for thirty minutes in an oven preheated to 200 degrees."),
    ("football", "The striker scored a late goal to win the match for her team.",
     "Her team won the match thanks to a late goal by the striker."),
    ("astronomy", "Jupiter is the largest planet in our solar system.",
     "The largest planet of the solar system is Jupiter."),
    ("finance", "The central bank raised interest rates to fight inflation.",
     "To fight inflation, interest rates were raised by the central bank."),
    ("programming", "The function returns an empty list when the input file is missing.",
     "When the input file is missing, the function returns an empty list."),
    ("gardening", "Water the tomato plants early in the morning during hot summers.",
     "During hot summers, tomato plants should be watered early in the morning."),
    ("medicine", "The doctor prescribed antibiotics for the bacterial infection.",
     "Antibiotics were prescribed by the doctor to treat the bacterial infection."),
    ("travel", "The train to Vienna leaves from platform four at nine o'clock.",
     "At nine o'clock the train for Vienna departs from platform four."),
    ("cooking", "Chop the onions finely and fry them in olive oil until golden.",
     "Fry finely chopped onions in olive oil until they turn golden."),
    ("astronomy", "A total solar eclipse happens when the moon blocks the sun completely.",
     "When the moon completely blocks the sun, a total solar eclipse occurs."),
    ("finance", "Shares of the company fell sharply after the quarterly earnings report.",
     "The company's shares dropped sharply following its quarterly earnings report."),
    ("programming", "Use a virtual environment to keep the project's dependencies isolated.",
     "The project's dependencies stay isolated when you use a virtual environment."),
]

# topic: (subjects, verbs, objects, endings)
TEMPLATES = {
    "cooking": (["The chef", "My grandmother", "The recipe", "A good cook", "The baker"],
                ["stirs", "seasons", "simmers", "roasts", "whisks", "tastes"],
                ["the tomato sauce", "a pot of lentil soup", "the garlic butter", "fresh pasta dough",
                 "the vegetable stock", "a pan of mushrooms"],
                ["over a low flame.", "with a pinch of salt.", "before serving dinner.", "for ten minutes.",
                 "in a cast iron skillet."]),
    "football": (["The goalkeeper", "The coach", "The midfielder", "The referee", "The home side"],
                 ["defends", "passes", "celebrates", "reviews", "controls", "misses"],
                 ["a penalty kick", "the corner", "the second half", "a free kick near the box",
                  "the league title", "the offside decision"],
                 ["in front of a loud crowd.", "during the derby.", "before the final whistle.",
                  "in extra time.", "at the stadium."]),
    "astronomy": (["The telescope", "An astronomer", "The space probe", "The observatory", "A comet"],
                  ["observes", "photographs", "orbits", "detects", "measures", "approaches"],
                  ["a distant galaxy", "the rings of Saturn", "a red dwarf star", "the Andromeda nebula",
                   "a cluster of stars", "the surface of Mars"],
                  ["on a clear night.", "through the dark sky.", "millions of kilometres away.",
                   "with an infrared camera.", "near the horizon."]),
    "finance": (["The investor", "The stock market", "The bank", "The hedge fund", "The accountant"],
                ["buys", "sells", "audits", "forecasts", "hedges", "borrows"],
                ["government bonds", "the quarterly budget", "a mortgage loan", "foreign currency",
                 "the pension portfolio", "corporate debt"],
                ["before the market closes.", "despite rising costs.", "for the fiscal year.",
                 "at a fixed rate.", "after the audit."]),
    "programming": (["The compiler", "A developer", "The test suite", "The server", "The script"],
                    ["parses", "refactors", "caches", "compiles", "logs", "deploys"],
                    ["the source code", "a recursive function", "the database query", "the unit tests",
                     "a JSON config file", "the web request"],
                    ["on every commit.", "in the background.", "without any warnings.",
                     "behind a feature flag.", "on the build machine."]),
    "gardening": (["The gardener", "My neighbour", "The greenhouse", "A rose bush", "The allotment"],
                  ["prunes", "plants", "fertilises", "mulches", "digs", "harvests"],
                  ["the apple trees", "a bed of carrots", "the compost heap", "the flower borders",
                   "tulip bulbs", "the herb garden"],
                  ["in early spring.", "after the frost.", "with a sharp spade.", "along the fence.",
                   "before the autumn rain."]),
    "medicine": (["The nurse", "The surgeon", "The patient", "The clinic", "A pharmacist"],
                 ["examines", "vaccinates", "monitors", "treats", "diagnoses", "bandages"],
                 ["the blood pressure", "a broken wrist", "the allergic reaction", "a high fever",
                  "the heart rhythm", "a deep wound"],
                 ["in the emergency room.", "twice a day.", "after the operation.", "with great care.",
                  "at the hospital."]),
    "travel": (["The tourist", "Our guide", "The ferry", "The airline", "A backpacker"],
               ["books", "explores", "crosses", "cancels", "visits", "photographs"],
               ["a hostel in Lisbon", "the old harbour", "a flight to Oslo", "the mountain pass",
                "the museum of modern art", "a night bus to Prague"],
               ["during the holidays.", "with a small suitcase.", "at sunrise.", "on a tight budget.",
                "in the rainy season."]),
}


def filler(rng: random.Random, topic: str) -> str:
    subjects, verbs, objects, endings = TEMPLATES[topic]
    return f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} {rng.choice(endings)}"


def build() -> list[dict]:
    """Filler sentences topic by topic, with the pairs' members interleaved at fixed positions."""
    rng = random.Random(SEED)
    docs = [{"text": filler(rng, t), "label": t, "pair": None} for t in TEMPLATES for _ in range(PER_TOPIC)]
    rng.shuffle(docs)
    for i, (topic, a, b) in enumerate(PAIRS):
        name = f"p{i + 1:02d}"
        docs.insert(7 + 25 * i, {"text": a, "label": topic, "pair": name})
        docs.insert(19 + 25 * i, {"text": b, "label": topic, "pair": name})
    return [{"id": f"t{k:04d}", **d} for k, d in enumerate(docs)]


def main() -> None:
    with open(HERE / "texts.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for doc in build():
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
