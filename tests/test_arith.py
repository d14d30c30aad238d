from prmrl.tasks import arith


def small_cfg(**kw):
    return arith.ArithConfig(n_train=300, n_test=50, **kw)


def test_splits_are_deterministic_and_disjoint():
    train1, test1 = arith.generate_splits(small_cfg())
    train2, test2 = arith.generate_splits(small_cfg())
    assert [p.question for p in train1] == [p.question for p in train2]
    assert [p.question for p in test1] == [p.question for p in test2]
    keys = lambda ps: {(p.start, p.ops) for p in ps}
    assert not keys(train1) & keys(test1)
    assert len(train1) == 300 and len(test1) == 50
    other, _ = arith.generate_splits(small_cfg(seed=99))
    assert [p.question for p in other] != [p.question for p in train1]


def test_generator_respects_config():
    train, _ = arith.generate_splits(small_cfg(min_ops=4, max_ops=4, ops="+-"))
    for p in train:
        assert len(p.ops) == 4 and all(op in "+-" for op, _ in p.ops)
        assert all(v >= 0 for v in p.values())


def test_reference_solution_is_correct_and_boxed():
    train, _ = arith.generate_splits(small_cfg())
    for p in train[:50]:
        lines = p.solution.split("\n")
        assert lines[-1] == f"\\boxed{{{p.answer}}}"
        assert len(lines) == len(p.ops) + 1
        assert arith.grade(p.solution, p.answer) is True
        assert all(v.label == 1.0 for v in arith.check_steps(p, lines))


def test_question_text():
    rng = __import__("random").Random(0)
    p = arith.make_problem("x", 37, (("*", 4), ("+", 12), ("-", 9)), rng)
    assert p.answer == "151"
    assert p.question == f"Start with 37. (a) 4 times. (b) {p.phrases[1]}. (c) {p.phrases[2]}."
    assert p.phrases[1] in ("12 more", "12 added") and p.phrases[2] in ("9 less", "9 fewer")
    # each step copies its operation's words from the question, then does the arithmetic
    assert p.solution == (f"(a) 4 times: 37*4=148\n(b) {p.phrases[1]}: 148+12=160\n"
                          f"(c) {p.phrases[2]}: 160-9=151\n\\boxed{{151}}")


def test_step_checker_labels():
    rng = __import__("random").Random(0)
    p = arith.make_problem("x", 37, (("*", 4), ("+", 12)), rng)
    labels = lambda steps: [v.label for v in arith.check_steps(p, steps)]
    assert labels(["37*4=148", "148+12=160", "\\boxed{160}"]) == [1, 1, 1]
    # a slip: wrong arithmetic, and everything after it is off the true chain
    assert labels(["37*4=149", "149+12=161", "\\boxed{161}"]) == [0, 0, 0]
    # right arithmetic, wrong operand (not the problem's operation)
    assert labels(["37*5=185", "185+12=197", "\\boxed{197}"]) == [0, 0, 0]
    # restatement and check lines are right when true; repeats of true steps too
    assert labels(["Start: 37", "37*4=148", "Check: 37*4=148", "148+12=160", "\\boxed{160}"]) == [1] * 5
    assert labels(["Start: 36", "37*4=148"]) == [0, 0]
    assert labels(["37*4=148", "Check: 37*4=150"]) == [1, 0]
    # a check of an operation not done yet is not a check
    assert labels(["Check: 148+12=160"]) == [0]
    # neutral filler keeps the prefix label; a wrong final answer is wrong
    assert labels(["37*4=148", "Step ready.", "148+12=160", "\\boxed{161}"]) == [1, 1, 1, 0]
    # ... but a garbled line that writes numbers is a malformed step, wrong, and so is what follows
    for garbled in ("(b) 6 t5}", "\\bored{160}", "St=37", "148+12=", "Check: 37*4"):
        verdicts = arith.check_steps(p, ["37*4=148", garbled, "148+12=160"])
        assert [v.label for v in verdicts] == [1, 0, 0] and verdicts[1].kind == "malformed", garbled
    # stopping early: the boxed value must be the final answer
    assert labels(["37*4=148", "\\boxed{148}"]) == [1, 0]
    # labelled steps: the label must name the operation the step applies
    assert labels(["(a) 37*4=148", "(b) 148+12=160", "\\boxed{160}"]) == [1, 1, 1]
    assert labels(["(a) 37*4=148", "(a) 148+12=160"]) == [1, 0]
    assert labels(["(b) 37*4=148"]) == [0]
    # operation words: any synonym of the step's own operation and operand is right
    assert labels(["(a) 4 times: 37*4=148", "(b) 12 added: 148+12=160", "\\boxed{160}"]) == [1, 1, 1]
    assert labels(["(a) 4 times: 37*4=148", "(b) 12 more: 148+12=160", "Check: 37*4=148"]) == [1, 1, 1]
    # ... words naming another operation or operand are wrong, even with right arithmetic
    assert labels(["(a) 4 more: 37*4=148"]) == [0]
    assert labels(["(a) 5 times: 37*4=148"]) == [0]
    assert labels(["(a) 4 bigger: 37*4=148"]) == [0]
    assert [v.arithmetic_ok for v in arith.check_steps(p, ["(a) 4 more: 37*4=148"])] == [True]
    assert arith.check_step(p, ["37*4=148"], "148+12=160") is True
    assert arith.check_step(p, ["37*4=148"], "148+12=161") is False


def test_grade():
    assert arith.grade("1+1=2\n\\boxed{2}", "2") is True
    assert arith.grade("\\boxed{3}", "2") is False
    assert arith.grade("no answer here", "2") is False     # no final answer: wrong
    assert arith.grade("\\boxed{2", "2") is False          # unclosed (truncated)
    assert arith.grade("\\boxed{2}", "two") is None         # bad gold: cannot judge


def test_corpus_has_slips_and_extra_lines():
    train, _ = arith.generate_splits(small_cfg())
    cfg = arith.CorpusConfig(slip_rate=0.2, restate_rate=0.3, check_rate=0.2, seed=1)
    corpus = arith.sft_corpus(train, cfg)
    assert len(corpus) == len(train)
    wrong = sum(arith.grade(r, p.answer) is False for (_, r), p in zip(corpus, train))
    assert 0.15 < wrong / len(train) < 0.6
    assert any(r.startswith("Start: ") for _, r in corpus)
    assert any("Check: " in r for _, r in corpus)
    n_steps = {len(r.split("\n")) for _, r in corpus}
    assert len(n_steps) >= 3          # step counts vary
    assert arith.sft_corpus(train, cfg) == corpus   # deterministic per seed


def test_confused_facts_are_a_stable_fraction_with_one_wrong_result_each():
    facts = [(a, op, b) for a in range(21) for op in "+-*" for b in range(1, 10)
             if arith.OPS[op](a, b) >= 0]
    wrong = {f: arith.confused_result(*f, 0.1) for f in facts}
    confused = {f: w for f, w in wrong.items() if w is not None}
    assert 0.05 < len(confused) / len(facts) < 0.15
    for (a, op, b), w in confused.items():
        assert w != arith.OPS[op](a, b) and w >= 0
    assert {f: arith.confused_result(*f, 0.1) for f in facts} == wrong    # stable, not random
    assert all(arith.confused_result(*f, 0.0) is None for f in facts)
    # a higher rate confuses a superset, with the same wrong results
    assert all(arith.confused_result(*f, 0.3) == w for f, w in confused.items())


def test_corpus_writes_confused_facts_wrong_at_their_rate_and_others_right():
    train, _ = arith.generate_splits(small_cfg())
    cfg = arith.CorpusConfig(slip_rate=0.0, restate_rate=0.0, check_rate=0.0, confusion_rate=0.3,
                             confusion_prob=0.6, seed=2)
    n_confused = n_wrong = 0
    for (_, response), p in zip(arith.sft_corpus(train, cfg), train):
        lines = response.split("\n")[:-1]
        value = p.start
        for line, (op, b) in zip(lines, p.ops):
            result = int(line.rsplit("=", 1)[1])
            wrong = arith.confused_result(value, op, b, 0.3)
            if wrong is None:
                assert result == arith.OPS[op](value, b)       # no slips: unconfused facts right
            else:
                n_confused += 1
                n_wrong += result == wrong
                assert result in (wrong, arith.OPS[op](value, b))
            value = result
    assert n_confused > 200
    assert 0.5 < n_wrong / n_confused < 0.7


def test_length_grouped_batches_cover_every_example_once():
    import random

    from prmrl.sft import length_grouped_batches

    lengths = [random.Random(i).randint(10, 99) for i in range(1000)]
    batches = length_grouped_batches(lengths, 64, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) <= 64 for b in batches)
    # grouped: far less padding than the same batch sizes with random rows
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded < 1.15 * sum(lengths)
    assert length_grouped_batches(lengths, 64, random.Random(0)) == batches   # seeded
