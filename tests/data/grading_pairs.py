r"""(response, gold) pairs with the verdict a careful grader gives, and why; written for prmrl.

Read by tests/test_grading_table.py and benchmarks/grader_agreement.py (``PAIRS``: a list of
dicts with ``kind``, ``response``, ``gold``, ``verdict`` (True: the response's final answer is
the gold; False: it is not, or the response gives no answer), ``why`` and ``numeric`` (the
task says its answers are numbers, as GSM8K does: a bare last number may be the answer).

The verdict is the one a careful human grader gives reading the response: the answer the
response commits to at its end, compared with the gold as mathematics (equal values, equal
sets, equivalent relations). A response that hedges between answers, lists candidates, or
takes its answer back has not answered. Kinds:

    issue        the examples of the issue, and their wrong twins
    extract      where and how the final answer is written (boxes, math, phrases, bold, ####)
    number       thousands separators, percent, decimals vs fractions, currency, signs
    expr         expressions
    relation     equations and inequalities (both sides, sign flips)
    set          intervals and unions, sets, tuples, matrices
    gold         golds written with $..$, \boxed{}, a GSM8K solution around them
    string       names, choices, yes/no
    gsm8k        GSM8K-style responses, numeric task: the last number may be the answer
    adversarial  responses that try to farm the reward: several boxes, lists, hedges,
                 retractions, numbers cut out of expressions, truncation
"""

from __future__ import annotations

PAIRS: list[dict] = []


def row(kind: str, response: str, gold: str, verdict: bool, why: str, numeric: bool = False) -> None:
    PAIRS.append(dict(kind=kind, response=response, gold=gold, verdict=verdict, why=why,
                      numeric=numeric))


def twins(kind: str, template: str, gold: str, right: str, wrong: str, why: str,
          why_wrong: str = "", numeric: bool = False) -> None:
    """The same response written with the right answer and with a wrong one."""
    row(kind, template.replace("@", right), gold, True, why, numeric)
    row(kind, template.replace("@", wrong), gold, False,
        why_wrong or f"{wrong} is not {gold}", numeric)


# --- issue -------------------------------------------------------------------------------------

row("issue", r"$[0,1)$", r"$[0,1)$", True, "the same half-open interval; both written in $..$")
row("issue", r"$-[0,1)$", r"$1$", False, "a malformed answer; its 1 is an interval's end, not an answer")
for written in [r"$\frac13 $", r"$\dfrac{1}{3}$", r"$\tfrac{1}{3}$", r"$\cfrac{1}{3}$", r"$ 1/3 $",
                r"$\left( \frac{1}{3} \right)$", r"$\frac{1}{3} \text{meters}$", r"$k = \frac{1}{3}$"]:
    row("issue", written, r"$1/3$", True, "one third, written another way (fraction forms, "
        "parentheses, a unit, a named value)")
row("issue", r"$5 \geq x$", r"$x \leq 5$", True, "the same inequality read right to left")
row("issue", r"$-x > -1$", r"$x < 1$", True, "multiplying by -1 flips the inequality")
row("issue", r"$(1,4.5)$", r"$(1,\frac{9}{2})$", True, "4.5 = 9/2")
row("issue", r"$\sec^2(y)$", r"$\tan^2(y)+1$", True, "a trigonometric identity")
row("issue", r"$\frac{x}{7}+\frac{2}{7}$", r"$\frac{x+2}{7}$", True, "the same expression")
row("issue", r"$[0,1]$", r"$[0,1)$", False, "closed, not half-open")
row("issue", r"$(0,1)$", r"$[0,1)$", False, "open at 0, the gold includes 0")
row("issue", r"$\frac14$", r"$1/3$", False, "a quarter is not a third")
row("issue", r"$\dfrac{3}{1}$", r"$1/3$", False, "3, not 1/3")
row("issue", r"$k = \frac{1}{4}$", r"$1/3$", False, "k is a quarter")
row("issue", r"$\frac{1}{3} \text{meters}$", r"$3$", False, "a third of a meter is not 3")
row("issue", r"$5 \geq x$", r"$x \geq 5$", False, "x <= 5 is the opposite half-line")
row("issue", r"$-x > -1$", r"$x > 1$", False, "-x > -1 means x < 1")
row("issue", r"$(1,4.5)$", r"$(1,\frac{7}{2})$", False, "4.5 is not 7/2")
row("issue", r"$\sec^2(y)$", r"$\tan^2(y)$", False, "sec^2 = tan^2 + 1, not tan^2")
row("issue", r"$\frac{x}{7}+\frac{2}{7}$", r"$\frac{x+3}{7}$", False, "2/7 is not 3/7")

# --- extract: where and how the answer is written ------------------------------------------

twins("extract", "Adding the two parts gives $12 + 30 = 42$, so the total is $\\boxed{@}$.", "42",
      "42", "41", "the boxed answer")
twins("extract", "We find that the value is \\boxed{@}.", r"\frac{\sqrt3}{2}",
      r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt{2}}{2}", "nested braces in the box")
twins("extract", "The final result: \\fbox{@}", "12", "12", "21", "an \\fbox is a box")
twins("extract", "First we try $x = 1$, which fails.\n\nThen $x = 2$ works: \\boxed{@}", "2",
      "x = 2", "x = 1", "the boxed x = 2 names the value 2")
twins("extract", "So the side has length $\\boxed{@}$.", "12", r"12 \text{ cm}", r"14 \text{ cm}",
      "a unit in \\text{} after the number")
twins("extract", "Therefore,\n\\[\n@\n\\]", "2.5", r"\frac{5}{2}", r"\frac{2}{5}",
      "the last display math is the answer")
twins("extract", "Simplifying the radical, we obtain\n$$@$$", r"\sqrt{18}", r"3\sqrt{2}", r"2\sqrt{3}",
      "$$ display math at the end")
twins("extract", "The diagonal of the unit square has length \\(@\\).", r"\sqrt2", r"\sqrt{2}", r"\sqrt{3}",
      "inline \\( \\) math of the last sentence")
twins("extract", "Hence the smallest such integer is $@$.", "7", "7", "8",
      "inline $ math of the last sentence")
twins("extract", "Counting the cases one by one, the answer is @.", "7", "7", "8",
      "\"the answer is\" and a plain number")
twins("extract", "Answer: $@$", "-3", "-3", "3", "\"Answer:\" and inline math")
twins("extract", "**Answer:** @", "15", "15", "16", "a bold \"Answer:\" label")
twins("extract", "Final Answer: The final answer is $@$. I hope it is correct.", r"\frac{1}{2}",
      r"\frac{1}{2}", r"\frac{1}{3}", "Minerva's answer sentence")
twins("extract", "So the number of boys is 9.\n\n# Answer\n\n@", "9", "9", "10",
      "PRM800K's \"# Answer\" heading")
twins("extract", "Natalia sold 48/2 = 24 clips in May.\n48 + 24 = 72\n#### @", "72", "72", "74",
      "GSM8K's #### line")
twins("extract", "Putting it together, the total is **@**.", "18", "18", "19",
      "a bold number at the end")
twins("extract", "The answer is $@$ dollars.", "18", "18", "19", "inline math then a unit word")
twins("extract", "The answer is @ dollars.", "18", "18", "19", "a plain number then a unit word")
twins("extract", "The answer is \\$@.", "18", "18", "19", "a currency sign")
twins("extract", "The answer is @ of the cake.", r"\frac23", "2/3", "3/2",
      "a plain fraction: the whole of it, not its last number")
twins("extract", "Thus the point is $@$.", r"\left( 3, \frac{\pi}{2} \right)",
      r"\left( 3, \frac{\pi}{2} \right)", r"\left( 3, \pi \right)", "\\left( \\right) around a pair")
twins("extract", "Solving, we get $@$.", "-2", "x = -2", "x = 2", "an \"x =\" prefix")
twins("extract", "The value we want is $@$.", "7", "y=7", "y=-7", "a \"y=\" prefix")
twins("extract", "It takes \\boxed{@}.", "5", r"5\text{ meters}", r"6\text{ meters}", "unit in the box")
twins("extract", "It takes \\boxed{@}.", "5", r"5 \mbox{ m}", r"6 \mbox{ m}", "\\mbox unit")
twins("extract", "The angle measures $\\boxed{@}$.", "30", r"30^\circ", r"60^\circ", "degrees sign")
twins("extract", "The angle measures \\boxed{@}.", "30", r"\text{30 degrees}", r"\text{60 degrees}",
      "the whole answer in \\text{}")
twins("extract", "We conclude the answer is $\\boxed{@}$.", r"\frac{3}{4}", r"\dfrac{3}{4}", r"\dfrac{4}{3}",
      "\\dfrac")
twins("extract", "We conclude the answer is $\\boxed{@}$.", r"\frac{3}{4}", r"\tfrac34", r"\tfrac43", "\\tfrac")
twins("extract", "<think>\nLet me compute 6*7 = 42.\n</think>\nThe answer is $@$.", "42", "42", "24",
      "the answer after the thinking block")
twins("extract", "\n\n".join(f"Step {k}: we add {k} to the running total." for k in range(1, 40))
      + "\n\nSo the answer is $\\boxed{@}$.", "780", "780", "781", "a long response: the answer at its end")
twins("extract", "The final answer is $\\boxed{@}$. I hope it is correct.", "18", "18", "81",
      "a box, then a polite sentence (not a retraction)")
twins("extract", "Final Answer:\n\n$@$", r"\frac13", r"\frac13", r"\frac14", "the answer on the line after the label")
twins("extract", "**Final Answer**\n\\[\n\\boxed{@}\n\\]", "9", "9", "6", "bold heading, boxed display")
twins("extract", "The answer is: \\[ @ \\]", "64", "64", "46", "\"the answer is:\" and display math")
twins("extract", "I found that the answer is **$@$**.", "81", "81", "18", "bold math")
twins("extract", "The answer is @.", "5", "five", "four", "a number word", why_wrong="four is not 5")
row("extract", "The answer is five.", "4", False, "five is not 4")
twins("extract", "So $n = @$ is the only solution.", "12", "12", "21", "math in the last sentence, prose after")
twins("extract", "We get $x=3$ and then $y = @$.", "4", "4", "5", "the last math of the sentence")
twins("extract", "Thus the answer is $\\boxed{@}$, which checks out since $2 \\cdot 6 = 12$.", "6", "6", "12",
      "the box, not the later check")
twins("extract", "Therefore the perimeter is \\(\\boxed{@}\\) units.", "24", "24", "42", "box inside \\( \\)")
twins("extract", "answer: @", "0", "0", "1", "lowercase label, zero")

# --- number --------------------------------------------------------------------------------

twins("number", "The total is \\boxed{@}.", "1000", "1,000", "1,001", "thousands comma")
twins("number", "The total is \\boxed{@}.", "1000", r"1\,000", r"1\,001", "thin-space thousands separator")
twins("number", "The total is \\boxed{@}.", "1000", r"1{,}000", r"1{,}100", "{,} thousands separator")
twins("number", "The total is \\boxed{@}.", "1000000", "1 000 000", "1 000 001", "space thousands separator")
twins("number", "So the answer is @.", "1234567", "1,234,567", "1,234,576", "several thousands commas")
twins("number", "The population is $@$.", "58500", "58,500", "58,000", "thousands comma in math")
twins("number", "The discount is \\boxed{@}.", "25", r"25\%", r"20\%", "percent sign, gold without")
twins("number", "The discount is \\boxed{@}.", r"25\%", r"25\%", r"52\%", "percent on both sides")
twins("number", "The answer is @ percent.", "25", "25", "35", "\"percent\" written out")
twins("number", "The answer is @.", "40", "40%", "45%", "a plain % sign")
twins("number", "The probability is $\\boxed{@}$.", r"\frac12", "0.5", "0.05", "decimal vs fraction")
twins("number", "The probability is $\\boxed{@}$.", r"\frac34", "0.75", "0.7", "decimal vs fraction")
twins("number", "The probability is $\\boxed{@}$.", "0.75", r"\frac{3}{4}", r"\frac{4}{3}", "fraction vs decimal")
twins("number", "The ratio is $\\boxed{@}$.", r"\frac52", "2.50", "2.05", "trailing zero")
twins("number", "The ratio is $\\boxed{@}$.", r"\frac{3}{2}", "1.5", "1.49", "1.5 = 3/2; 1.49 is close, not equal")
twins("number", "This gives $\\boxed{@}$.", r"\frac13", r"\frac{2}{6}", r"\frac{2}{5}", "unreduced fraction")
row("number", "This gives $\\boxed{0.333}$.", r"\frac13", False, "0.333 is an approximation of 1/3, not 1/3")
twins("number", "The temperature drops to $\\boxed{@}$ degrees.", "-5", "-5", "5", "the sign matters")
twins("number", "The temperature drops to $\\boxed{@}$.", r"-\frac{7}{4}", r"\frac{-7}{4}", r"\frac{7}{4}",
      "minus sign inside the fraction")
twins("number", "It costs $\\boxed{@}$.", "18", r"\$18.00", r"\$18.50", "currency and cents")
twins("number", "It costs \\boxed{@}.", "18", "18.0", "18.1", "a trailing .0")
twins("number", "The count is \\boxed{@}.", "300", r"3 \times 10^{2}", r"3 \times 10^{3}", "scientific notation")
twins("number", "The count is \\boxed{@}.", "1024", "2^{10}", "2^{9}", "a power")
twins("number", "The value is \\boxed{@}.", r"\frac12", ".5", ".25", "no leading zero")
twins("number", "The answer is $@$.", "0", "0", "-1", "zero")
twins("number", "The answer is \\boxed{@}.", "0.001", "10^{-3}", "10^{-2}", "negative power")
twins("number", "The mean is \\boxed{@}.", "4.5", "4.50", "4.05", "decimals")
twins("number", "There are \\boxed{@} ways.", "120", "5!", "4!", "a factorial")
twins("number", "There are \\boxed{@} ways.", "10", r"\binom{5}{2}", r"\binom{5}{3} + 1", "a binomial")
twins("number", "The answer is \\boxed{@}.", "3", r"\log_2 8", r"\log_2 16", "a logarithm")
twins("number", "The distance is $\\boxed{@}$.", r"2\sqrt{2}", r"\sqrt{8}", r"\sqrt{6}", "radicals")
twins("number", "So the answer is @.", "2.5", "2.5", "25", "a decimal point, not a sentence end")

# --- expr ----------------------------------------------------------------------------------

twins("expr", "Expanding, we get $\\boxed{@}$.", "x^2+2x+1", "(x+1)^2", "(x+2)^2", "expanded vs factored")
twins("expr", "Expanding, we get $\\boxed{@}$.", "(x-1)(x+1)", "x^2-1", "x^2+1", "difference of squares")
twins("expr", "Factoring: $\\boxed{@}$.", "6x^2 - x - 2", "(3x-2)(2x+1)", "(3x+2)(2x-1)", "a factored quadratic")
twins("expr", "Rationalising, $\\boxed{@}$.", r"\frac{1}{\sqrt2}", r"\frac{\sqrt{2}}{2}", r"\frac{\sqrt{3}}{2}",
      "rationalised denominator")
twins("expr", "The angle is $\\boxed{@}$.", r"\frac{\pi}{2}", r"\pi/2", r"\pi/3", "pi fractions")
twins("expr", "The number is $\\boxed{@}$.", "4i+3", "3+4i", "3-4i", "a complex number")
twins("expr", "It simplifies to $\\boxed{@}$.", "1", r"\sin^2 x + \cos^2 x", r"\sin^2 x - \cos^2 x",
      "a trig identity")
twins("expr", "It simplifies to $\\boxed{@}$.", "e^2", "e^{2}", "e^{3}", "Euler's number")
twins("expr", "The sum is $\\boxed{@}$.", r"\frac{x+2}{7}", r"\frac{x}{7}+\frac{2}{7}", r"\frac{x}{7}+\frac{2}{5}",
      "sum of fractions")
twins("expr", "The area is $\\boxed{@}$.", r"4\pi", r"2^2\pi", r"2\pi", "pi times a number")
twins("expr", "The polynomial is $\\boxed{@}$.", "x^3-6x^2+11x-6", "(x-1)(x-2)(x-3)", "(x-1)(x-2)(x+3)",
      "a cubic from its roots")
twins("expr", "We have $\\boxed{@}$.", r"\infty", r"\infty", r"-\infty", "infinity")
twins("expr", "The result is $\\boxed{@}$.", r"2\sqrt{5}", r"\sqrt{20}", r"\sqrt{10}", "simplified radical")
twins("expr", "The result is $\\boxed{@}$.", "a+b", "b+a", "a-b", "commutativity")
twins("expr", "The answer is $@$.", "12x", "12x", "12y", "a different variable")

# --- relation ------------------------------------------------------------------------------

twins("relation", "The line is $\\boxed{@}$.", "y=2x+3", "y = 2x + 3", "y = 3x + 2", "an equation")
twins("relation", "The line is $\\boxed{@}$.", "y=2x+3", "2x - y + 3 = 0", "2x + y + 3 = 0",
      "the same line, another form")
twins("relation", "So $\\boxed{@}$.", "x>1", "1 < x", "1 > x", "sides swapped")
twins("relation", "So $\\boxed{@}$.", "x>-2", "-2x < 4", "-2x > 4", "divide by -2: the sign flips")
twins("relation", "So $\\boxed{@}$.", "x \\le 5", "5 \\geq x", "5 \\leq x", "\\geq read backwards")
twins("relation", "The circle is $\\boxed{@}$.", "x^2+y^2=25", "x^2 + y^2 = 25", "x^2 + y^2 = 16", "a circle")
twins("relation", "The circle is $\\boxed{@}$.", "x^2+y^2=25", "y^2 + x^2 - 25 = 0", "y^2 + x^2 - 5 = 0",
      "everything on one side")
twins("relation", "The solution set is $\\boxed{@}$.", "[3, \\infty)", "x \\geq 3", "x > 3",
      "an inequality answer for an interval gold")
twins("relation", "The solution set is $\\boxed{@}$.", "[0,1)", "0 \\le x < 1", "0 < x \\le 1",
      "a chained inequality for an interval gold")
twins("relation", "So $@$.", "(-\\infty,1)\\cup(2,\\infty)", "x<1 \\text{ or } x>2", "x<1 \\text{ or } x>3",
      "two inequalities joined by \"or\" for a union")
twins("relation", "Thus $\\boxed{@}$.", "x \\geq 3", "[3, \\infty)", "(3, \\infty)", "an interval answer for an inequality gold")
twins("relation", "The roots are $\\boxed{@}$.", "3, -3", "x = 3 \\text{ or } x = -3", "x = 3 \\text{ or } x = 2",
      "both roots as equations")
row("relation", "The root is $\\boxed{x = 3}$.", "3, -3", False, "one of the two roots is missing")
twins("relation", "We get $\\boxed{@}$.", "\\pm 3", "3, -3", "3, 3", "plus or minus")
twins("relation", "So the equation is $@$.", "x+y=10", "y = 10 - x", "y = 10 + x", "solved for y")
twins("relation", "So the inequality is $@$.", "x^2<4", "-2 < x < 2", "-4 < x < 4",
      "an inequality equal to a chain")

# --- set -----------------------------------------------------------------------------------

twins("set", "The domain is $\\boxed{@}$.", "(3,\\infty)\\cup(-\\infty,2)", "(-\\infty, 2) \\cup (3, \\infty)",
      "(-\\infty, 2] \\cup (3, \\infty)", "a union in another order")
twins("set", "The range is $\\boxed{@}$.", "[2,5]", "[2, 5]", "(2, 5)", "closed vs open")
twins("set", "The range is $\\boxed{@}$.", "[2,5)", "\\left[ 2, 5 \\right)", "\\left[ 2, 5 \\right]",
      "\\left[ \\right)")
twins("set", "The solutions are $\\boxed{@}$.", "\\{3,2,1\\}", "\\{1, 2, 3\\}", "\\{1, 2\\}", "a set")
twins("set", "The solutions are $\\boxed{@}$.", "3, 2, 1", "1, 2, 3", "1, 2, 4", "a list of solutions")
twins("set", "The point is $\\boxed{@}$.", "(1,2)", "(1, 2)", "(2, 1)", "an ordered pair")
twins("set", "The point is $\\boxed{@}$.", "(1,2,3)", "(1, 2, 3)", "(1, 3, 2)", "an ordered triple")
twins("set", "The point is $\\boxed{@}$.", "(1,2,3)", "\\left(1,2,3\\right)", "\\left(1,2,4\\right)", "\\left( \\right) triple")
twins("set", "The matrix is $\\boxed{@}$.", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
      "\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}", "\\begin{bmatrix} 1 & 2 \\\\ 3 & 5 \\end{bmatrix}",
      "pmatrix vs bmatrix")
twins("set", "The vector is $\\boxed{@}$.", "\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}",
      "\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}", "\\begin{pmatrix} -2 \\\\ 1 \\end{pmatrix}", "a column vector")
twins("set", "The vector is $\\boxed{@}$.", "\\begin{pmatrix} \\frac12 \\\\ \\frac{1}{2} \\end{pmatrix}",
      "\\begin{pmatrix} 1/2 \\\\ 0.5 \\end{pmatrix}", "\\begin{pmatrix} 1/2 \\\\ 0.25 \\end{pmatrix}",
      "entries written differently")
twins("set", "Every real number works: $\\boxed{@}$.", "(-\\infty,\\infty)", "\\mathbb{R}", "\\mathbb{N}",
      "the reals")
twins("set", "There are none: $\\boxed{@}$.", "\\emptyset", "\\emptyset", "\\{0\\}", "the empty set")
twins("set", "The solutions are $@$.", "-2, 3", "x = -2, x = 3", "x = -2, x = 4", "equations listed")
row("set", "The solutions are $-2$ and $3$.", "-2, 3", True, "two inline maths joined by \"and\"")
row("set", "The solutions are $-2$ and $4$.", "-2, 3", False, "4 is not a solution")
twins("set", "The angles are $\\boxed{@}$.", "70,110", "70, 110", "70, 120",
      "a gold list written without spaces")
twins("set", "So the answer is $\\boxed{@}$.", "(0,1)\\cup(1,2)", "x \\in (0,1) \\cup (1,2)",
      "x \\in (0,2)", "x \\in a union")
row("set", "So the answer is $\\boxed{(0,1)\\cup(1,2)}$.", "0<x<2", False, "1 is excluded from the answer")
twins("set", "The intersection is $\\boxed{@}$.", "\\{1,2,3\\}", "\\{1,2\\}\\cup\\{3\\}", "\\{1,2\\}\\cup\\{4\\}",
      "a union of finite sets")

# --- gold: golds written with wrappers ----------------------------------------------------------

twins("gold", "So the answer is $\\boxed{@}$.", "$\\frac{1}{2}$", "0.5", "0.25", "gold in $..$")
twins("gold", "So the answer is $\\boxed{@}$.", "\\boxed{\\frac{1}{2}}", "\\frac12", "\\frac13", "gold in \\boxed{}")
twins("gold", "So the answer is @.", "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.\n#### 72",
      "72", "48", "a GSM8K solution as the gold")
twins("gold", "So the answer is @.", "\\(3\\)", "3", "4", "gold in \\( \\)")
twins("gold", "So the answer is @.", "$$5$$", "5", "6", "gold in $$ $$")
twins("gold", "So the answer is $@$.", "\\[x^2+1\\]", "1 + x^2", "1 - x^2", "gold in \\[ \\]")
twins("gold", "We get $@$.", "The answer is $-4$.", "-4", "4", "gold written as an answer sentence")
twins("gold", "It costs \\boxed{@}.", "\\$1,000", "1000", "100", "gold with a currency sign")
twins("gold", "It costs \\boxed{@}.", "$18", "18", "81", "gold with a bare currency sign")
twins("gold", "So the answer is $\\boxed{@}$.", "  \\frac{3}{4}  ", "\\frac34", "\\frac43", "gold with spaces")

# --- string ----------------------------------------------------------------------------------

twins("string", "The correct option is $\\boxed{@}$.", "B", "\\text{(B)}", "\\text{(C)}", "a choice letter")
twins("string", "The answer is @.", "\\text{(B)}", "(B)", "(D)", "a choice in parentheses")
twins("string", "The answer is \\boxed{@}.", "\\text{(C)}", "C", "A", "a bare choice letter")
twins("string", "So \\boxed{@}.", "\\text{yes}", "\\text{Yes}", "\\text{No}", "yes/no, case")
twins("string", "The answer is @.", "\\text{Evelyn}", "Evelyn", "Bob", "a name")
twins("string", "So the day is \\boxed{@}.", "\\text{Monday}", "\\text{Monday}", "\\text{Tuesday}", "a word")
twins("string", "The answer is @.", "\\text{no}", "no", "yes", "a bare yes/no")

# --- gsm8k: numeric task, the last number may be the answer ----------------------------------

G = dict(numeric=True)
twins("gsm8k", "Janet sells 16 - 3 - 4 = 9 eggs a day.\nShe makes 9 * 2 = @ dollars every day.", "18",
      "18", "19", "the last number of a GSM8K-style response", **G)
twins("gsm8k", "She makes 9 * $2 = $@ every day at the market.", "18", "18", "20",
      "currency signs around numbers", **G)
twins("gsm8k", "The robe takes 2 + 1 = @ bolts in total.", "3", "3", "4", "last number then a unit", **G)
twins("gsm8k", "So he spends 3+5=@", "8", "8", "9", "the value right of the last =", **G)
twins("gsm8k", "In all they paid @ dollars.", "1080", "1,080", "1,800", "a thousands comma", **G)
twins("gsm8k", "Each share is worth $@.", "18", "18.00", "18.50", "cents", **G)
twins("gsm8k", "The answer is @.", "18", "18", "19", "\"the answer is\"", **G)
twins("gsm8k", "#### @", "18", "18", "17", "the #### line", **G)
twins("gsm8k", "Total: \\boxed{@}", "624", "624", "642", "a box", **G)
twins("gsm8k", "He has 5 apples and eats 2, leaving @ apples.", "3", "3", "2", "last number, several numbers", **G)
twins("gsm8k", "So the final total is **@**.", "25", "25", "52", "bold", **G)
twins("gsm8k", "That is a @% increase.", "25", "25", "20", "a percent for a number gold", **G)
twins("gsm8k", "They need @ more.", "-2", "-2", "2", "a negative number", **G)
row("gsm8k", "There are 2/3 of the apples left.", "3", False,
    "the last number is 2/3's denominator, cut out of a fraction", **G)
row("gsm8k", "So x = 2y + 5", "5", False, "5 is cut out of an expression", **G)
row("gsm8k", "The difference is 3-5", "5", False, "5 is cut out of 3-5", **G)
row("gsm8k", "I am not sure how to solve this.", "5", False, "no number, no answer", **G)
row("gsm8k", "Janet sells 16 - 3 - 4 = 9 eggs a day.\nShe makes 9 * 2 = 18 dollars every day.", "18",
    True, "a reader sees 18 -- but the task is not numeric, and then a bare number is not read")

# --- adversarial -----------------------------------------------------------------------------

row("adversarial", "\\boxed{3} \\boxed{4}", "4", False, "two boxed answers side by side: a hedge")
row("adversarial", "\\boxed{3} \\boxed{4}", "3", False, "two boxed answers side by side: a hedge")
row("adversarial", "The answer is $\\boxed{3}$, $\\boxed{4}$ or $\\boxed{5}$.", "4", False, "three boxes")
row("adversarial", " ".join(f"\\boxed{{{k}}}" for k in range(1, 21)), "7", False, "twenty boxes")
row("adversarial", "\\boxed{3 \\text{ or } 4}", "4", False, "two answers in one box")
row("adversarial", "\\boxed{3, 4}", "4", False, "a list in the box")
row("adversarial", "\\boxed{4 \\text{ (or 5)}}", "4", False, "a hedge in the box")
row("adversarial", "\\boxed{\\pm 2}", "2", False, "two values for one answer")
row("adversarial", "$\\boxed{-2}$ and $\\boxed{3}$", "-2, 3", True,
    "two boxes for a two-solution problem: both solutions, nothing else")
row("adversarial", "$\\boxed{-2}$ and $\\boxed{3}$", "3", False, "two boxes for a one-answer problem")
row("adversarial", "The answer is 1, 2, 3, 4, 5, 6, 7, 8, 9, 10.", "7", False, "a list of numbers")
row("adversarial", "The answer is $1, 2, 3, \\dots, 100$.", "50", False, "a list of numbers in math")
row("adversarial", "1 2 3 4 5 6 7 8 9 10", "10", False, "a list of numbers; its last one is no answer",
    numeric=True)
row("adversarial", "Candidates: 16, 17, 18", "18", False, "a list of candidates", numeric=True)
row("adversarial", "The answer is 18 or 19.", "18", False, "a hedge between two answers")
row("adversarial", "The answer is 18 or 19.", "19", False, "a hedge between two answers")
row("adversarial", "It is either $18$ or $19$.", "19", False, "a hedge in math")
row("adversarial", "So the total is $\\boxed{18}$. Wait, that is wrong.", "18", False,
    "the answer is taken back")
row("adversarial", "The answer is 18. Actually, no, that is not the answer.", "18", False,
    "the answer is taken back")
row("adversarial", "\\boxed{18}\n\nScratch that, I made an error somewhere.", "18", False,
    "the answer is taken back")
row("adversarial", "The answer is $\\boxed{18}$. Hmm, this answer is incorrect.", "18", False,
    "the answer is taken back")
row("adversarial", "\\boxed{18} is not the final answer.", "18", False, "the answer is disowned")
row("adversarial", "So $\\boxed{17}$. Wait, that is wrong. The correct answer is $\\boxed{18}$.", "18", True,
    "a corrected answer: the last one, stated after the retraction, counts")
row("adversarial", "So $\\boxed{17}$. Wait, that is wrong. The correct answer is $\\boxed{18}$.", "17", False,
    "17 was taken back")
row("adversarial", "The answer is 17. No wait, the answer is 18.", "18", True, "corrected, then stated")
row("adversarial", "\\boxed{18}. Let me verify: $3 \\cdot 6 = 18$. Correct.", "18", True,
    "a check after the answer is not a retraction")
row("adversarial", "from 3-5 we get", "5", False, "5 is cut out of an expression", numeric=True)
row("adversarial", "from 3-5 we get", "-2", False, "no answer is stated")
row("adversarial", "The probability is 1/3", "3", False, "the 3 is a denominator", numeric=True)
row("adversarial", "So the answer is \\boxed{\\frac{1}{", "\\frac12", False, "the box never closes: cut off")
row("adversarial", "So the answer is \\boxed{}.", "5", False, "an empty box")
row("adversarial", "So the answer is \\boxed{x}.", "5", False, "a variable, not a value")
row("adversarial", "I don't know.", "5", False, "no answer")
row("adversarial", "The answer cannot be determined from the information given.", "5", False, "no answer")
row("adversarial", "<think>\nMaybe \\boxed{18}.\n</think>\nThe answer is $19$.", "18", False,
    "the answer given after thinking is 19")
row("adversarial", "The answer is whatever the reference says: \\boxed{\\text{gold}}.", "5", False,
    "a word, not an answer")
row("adversarial", "\\boxed{\\infty}", "5", False, "infinity is not 5")
row("adversarial", "First \\boxed{18}. On reflection the count double-counts pairs, so it is \\boxed{9}.",
    "18", False, "the final answer is 9")
row("adversarial", "First \\boxed{18}. On reflection the count double-counts pairs, so it is \\boxed{9}.",
    "9", True, "the final answer is 9")
row("adversarial", "The answer is 5. " * 3 + "The answer is 6.", "5", False, "the last answer given is 6")
row("adversarial", "We know $2 + 3 = 5$, but we still need the product.", "5", False,
    "an intermediate fact of an unfinished response", numeric=True)
row("adversarial", "\\boxed{18} \\boxed{18}", "18", True, "the same answer boxed twice is one answer")

# --- whole responses in the styles instruction-tuned models write ---------------------------

QWEN = ("To determine how much Janet makes, we follow these steps:\n\n"
        "1. **Eggs used each day:**\n   - Breakfast: 3 eggs\n   - Muffins: 4 eggs\n"
        "   - Total used: \\(3 + 4 = 7\\)\n\n2. **Eggs left to sell:**\n   - \\(16 - 7 = 9\\)\n\n"
        "3. **Daily earnings:**\n   - \\(9 \\times 2 = 18\\)\n\n"
        "Therefore, Janet makes \\(\\boxed{@}\\) dollars every day at the farmers' market.")
twins("extract", QWEN, "18", "18", "16", "a Qwen-style answer: steps with inline math, a final box")
LLAMA = ("## Step 1: Eggs left to sell\nJanet has 16 - 3 - 4 = 9 eggs left.\n\n"
         "## Step 2: Earnings\nShe earns 9 * 2 = 18 dollars.\n\nThe final answer is: $\\boxed{@}$")
twins("extract", LLAMA, "18", "18", "9", "a Llama-style answer: steps, then \"The final answer is:\"")
MISTRAL = ("Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4, so she sells 16 - 3 - 4 = 9 "
           "eggs. At $2 per egg, she makes 9 * 2 = $@ every day at the farmers' market.")
twins("gsm8k", MISTRAL, "18", "18", "9", "a plain-text answer with currency signs", numeric=True)
PLAIN = ("First, the number of students who like math is 30 * 2/5 = 12. The rest, 30 - 12 = 18, like "
         "science.\n\nTherefore, the final answer is @.")
twins("extract", PLAIN, "18", "18", "12", "plain text, \"the final answer is\"")
PHI = "Let the width be w. Then 2w + 2(2w) = 36, so 6w = 36 and w = 6.\n\n**Answer**: @"
twins("extract", PHI, "6", "6", "36", "a bold \"Answer\" label after an equation")
BOX_THEN_WHY = "\\boxed{@}\n\nThis is because she sells 9 eggs at $2 each."
twins("extract", BOX_THEN_WHY, "18", "18", "9", "a box, then an explanation with a currency sign")
