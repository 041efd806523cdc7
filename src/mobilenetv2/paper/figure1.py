"""Figure 1: ReLU transformations of a low-dimensional manifold embedded in higher-dimensional spaces.

A 2-D spiral x is mapped to n dimensions by a random matrix T (n x 2), passed through ReLU, and mapped back
with T's pseudo-inverse: y = T⁺ ReLU(T x). For small n ReLU destroys much of the spiral; for n = 15..30 it
survives almost intact (Sec. 3.2). As a number we report how much of the spiral is lost: the relative
error |y A - x| / |x| left after the best linear map A (2x2, least squares) back onto the input. (For large n,
y is close to x / 2: ReLU keeps half of each direction's energy, which a linear map undoes.)
"""

import json
from pathlib import Path

import numpy as np

from mobilenetv2.atomic import write_text_atomic
from mobilenetv2.paper.common import markdown_table, save_figure, write_csv

DIMENSIONS = (2, 3, 5, 15, 30)


def spiral(points: int = 1000, turns: float = 3.0) -> np.ndarray:
    """(points, 2) Archimedean spiral around the origin, radius growing from 0 to 1."""
    theta = np.linspace(0.0, 2 * np.pi * turns, points)
    r = theta / theta[-1]
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def relu_round_trip(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """x (P, 2) -> ReLU(x Tᵀ) (P, n) -> back through T⁺ (P, 2)."""
    t = rng.standard_normal((n, 2))
    return np.maximum(x @ t.T, 0.0) @ np.linalg.pinv(t).T


def linear_fit_error(x: np.ndarray, y: np.ndarray) -> float:
    """|y A - x| / |x| for the least-squares 2x2 A: what no linear read-out can recover."""
    a, *_ = np.linalg.lstsq(y, x, rcond=None)
    return float(np.linalg.norm(y @ a - x) / np.linalg.norm(x))


def compute(seed: int = 0) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = spiral()
    return x, {n: relu_round_trip(x, n, rng) for n in DIMENSIONS}


def plot(x: np.ndarray, outputs: dict[int, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(outputs) + 1, figsize=(3 * (len(outputs) + 1), 3.2))
    panels = [("Input", x)] + [(f"Output/dim={n}", y) for n, y in outputs.items()]
    color = np.linspace(0, 1, len(x))
    for ax, (title, pts) in zip(axes, panels, strict=True):
        ax.scatter(pts[:, 0], pts[:, 1], c=color, cmap="viridis", s=2)
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    save_figure(fig, path)
    plt.close(fig)


def figure1(*, out_dir: str | Path, seed: int = 0) -> str:
    """Write figure1.png and figure1.{csv,md,json} (reconstruction error per n); return the markdown."""
    out = Path(out_dir)
    x, outputs = compute(seed)
    errors = {n: linear_fit_error(x, y) for n, y in outputs.items()}
    rows = [[n, round(e, 4)] for n, e in errors.items()]
    write_csv(out / "figure1.csv", ["n", "relative_error"], rows)
    write_text_atomic(out / "figure1.json", json.dumps({"seed": seed, "relative_error": errors}, indent=1))
    plot(x, outputs, out / "figure1.png")
    text = (
        f"Spiral -> random T (n x 2) -> ReLU -> T⁺, seed {seed}: relative error after the best linear map "
        "back, per n.\n\n" + markdown_table(["n", "relative error"], rows)
    )
    write_text_atomic(out / "figure1.md", text + "\n")
    return text
