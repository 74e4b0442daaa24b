"""Where predict's per-image results go: the console (as before) or ``--results_file`` written as batches
finish, and a progress line with images/s on long runs.

``OUT.csv``: a header, then ``file_name, class_id_1, score_1, label_name_1, …, error`` per image.
``OUT.jsonl``: one ``{class_ids, scores, file_name, label_names}`` object a line (PaddleClas's keys).
``OUT.json``: one JSON document, the list of those objects (the shape of PaddleClas's
``--save_json_path``; a folder given there gets Paddle's default name ``test_res.json``).
An image that cannot be read is one row ``{file_name, error}`` (csv: the error column), the rest go on.
"""
import csv
import json
import os
import time

from common.errors import ConfigError, OutputError, describe_os_error

RESULT_SUFFIXES = (".csv", ".jsonl", ".json")
PADDLE_DEFAULT_NAME = "test_res.json"  # PaddleClas infer's --save_json_path file
PROGRESS_SECONDS = 10.0  # a progress line at most this often (none in a run shorter than that)


def results_path(path):
    """The results file ``path`` names (a folder: Paddle's ``test_res.json`` in it); ConfigError if unusable."""
    if os.path.isdir(path):
        path = os.path.join(path, PADDLE_DEFAULT_NAME)
    if not path.lower().endswith(RESULT_SUFFIXES):
        raise ConfigError(f"config error: results_file {path}: name it OUT.csv, OUT.jsonl or OUT.json")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"config error: results_file: folder {folder} does not exist")
    return path


def json_path(path):
    """``results_path`` for one JSON document (eval's result dict)."""
    path = results_path(path)
    if not path.lower().endswith(".json"):
        raise ConfigError(f"config error: results_file {path}: eval writes its result as one JSON document: "
                          f"name it OUT.json")
    return path


def write_json(path, document):
    """``document`` as one JSON file, written whole or not at all."""
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v))
        os.replace(path + ".tmp", path)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {describe_os_error(err)}") from None
    return path


class ResultSink:
    """Takes each batch's rows in image order; prints them (no results file) or appends them to the file."""

    def __init__(self, path, total, topk):
        self.path, self.total, self.topk = (results_path(path) if path else ""), total, topk
        self.count = self.failed = 0
        self.start = self.shown = time.monotonic()
        self.file = self.writer = None
        if self.path:
            try:
                self.file = open(self.path, "w", encoding="utf-8", newline="")
            except OSError as err:
                raise OutputError(f"cannot write {self.path}: {describe_os_error(err)}") from None
            self.kind = os.path.splitext(self.path)[1].lower()
            if self.kind == ".csv":
                self.writer = csv.writer(self.file)
                self.writer.writerow(["file_name"] + [f"{c}_{r}" for r in range(1, topk + 1)
                                                      for c in ("class_id", "score", "label_name")] + ["error"])
            elif self.kind == ".json":
                self.file.write("[")

    def add(self, rows):
        for row in rows:
            self.failed += "error" in row
            if not self.file:
                print(row, flush=True)
            elif self.writer:
                self.writer.writerow(self._csv_row(row))
            else:
                sep = "" if self.kind == ".jsonl" else ("\n" if not self.count else ",\n")
                self.file.write(sep + json.dumps(row, ensure_ascii=False) + ("\n" if self.kind == ".jsonl" else ""))
            self.count += 1
        if self.file:
            self.file.flush()  # a batch's rows are in the file once it is done
        self._progress()

    def _csv_row(self, row):
        ranks = [[row["class_ids"][r], row["scores"][r], row["label_names"][r]] if r < len(row.get("class_ids", ()))
                 else ["", "", ""] for r in range(self.topk)]
        return [row["file_name"]] + [v for rank in ranks for v in rank] + [row.get("error", "")]

    def rate(self):
        return self.count / max(time.monotonic() - self.start, 1e-9)

    def _progress(self):
        now = time.monotonic()
        if now - self.shown >= PROGRESS_SECONDS and self.count < self.total:
            self.shown = now
            print(f"predict: {self.count}/{self.total} images, {self.rate():.1f} images/s", flush=True)

    def close(self):
        if not self.file:
            return
        if self.kind == ".json":
            self.file.write("\n]\n")
        self.file.close()
        print(f"predict: {self.count} images ({self.failed} unreadable) in {time.monotonic() - self.start:.1f} s, "
              f"{self.rate():.1f} images/s; results in {self.path}", flush=True)
