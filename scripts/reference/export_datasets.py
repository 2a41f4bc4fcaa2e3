"""Write scikit-learn's two reference datasets as CSV (R writes the other eight)."""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine

OUT = Path(__file__).resolve().parents[2] / "tests" / "core" / "reference" / "data"


def write(name: str, X: np.ndarray, columns: list[str]) -> None:
    lines = [",".join(c.replace(" ", "_") for c in columns)]
    lines += [",".join(f"{v:.17g}" for v in row) for row in X]
    (OUT / f"{name}.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    wine = load_wine()
    write("wine", wine.data, list(wine.feature_names))
    cancer = load_breast_cancer()
    write("breast_cancer", cancer.data[:, :10], list(cancer.feature_names[:10]))
