"""Distillation's cost (docs/distillation.md): the student's training step alone and with each teacher
(``--distill dla34,dla102x2``), measured one after the other in the student's worker process."""


def ms_distill_step(net, teacher_name, x, y):
    """One step of the distillation train network (``common.distill``): the student's forward and
    backward, the frozen teacher's forward, JS + CE, Momentum on the student only."""
    from mindspore import nn
    from common import create_model
    from common.distill import DistillLoss, DistillWithLoss
    teacher = create_model(teacher_name, num_classes=1000)
    cell = DistillWithLoss(net, teacher, DistillLoss("js", 1.0, alpha=0.9, num_classes=1000))
    step = nn.TrainOneStepCell(cell, nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9))
    step.set_train(True)
    return lambda: step(x, y).asnumpy()


def distill_table(report, fmt_rate):
    """Markdown: per student, train img/s alone and with each teacher, and the step-time factor (``fmt_rate``:
    report's cell format, passed in as serving's curve_table takes it: report imports this module)."""
    rows = [(name, e) for name, e in report["models"].items() if e.get("distill")]
    if not rows:
        return []
    teachers = sorted({t for _, e in rows for t in e["distill"]})
    header = ["student", "train img/s alone"] + [f"with {t} (step time x)" for t in teachers]
    lines = ["", "Distillation: the student's training step alone and with a frozen teacher (same process)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in rows:
        alone = (entry.get("train") or {}).get("median")
        cells = [name, fmt_rate(entry.get("train"))]
        for teacher in teachers:
            res = entry["distill"].get(teacher) or {}
            factor = f" (x{alone / res['median']:.2f})" if alone and res.get("median") else ""
            cells.append(f"error: {res['error']}" if "error" in res else fmt_rate(res) + factor)
        lines.append("| " + " | ".join(cells) + " |")
    return lines
