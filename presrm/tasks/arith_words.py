"""The word lists the arith task renders its questions from (shared with its question rewriter)."""

NAMES = (
    ("Tom", "he"), ("Ana", "she"), ("Li", "he"), ("Mia", "she"), ("Sam", "he"),
    ("Eva", "she"), ("Raj", "he"), ("Zoe", "she"), ("Ben", "he"), ("Ada", "she"),
)  # fmt: skip
ITEMS = (
    "apples", "marbles", "stickers", "books", "coins", "cookies",
    "pencils", "stamps", "shells", "cards", "eggs", "toys",
)  # fmt: skip
STARTS = ("{name} has {a} {item}.", "{name} starts with {a} {item}.", "{name} collects {a} {item}.")
VERBS = {
    "+": ("buys {b} more", "finds {b} more", "gets {b} more", "wins {b} more"),
    "-": ("gives away {b}", "loses {b}", "sells {b}", "uses {b}"),
    "*": ("has {b} times as many", "ends with {b} times as many"),
}
QUESTIONS = ("How many {item} does {pron} have now?", "How many {item} does {name} have in the end?")
QUESTION_LEFT = "How many {item} does {pron} have left?"  # only after a final "-"
