"""`imgclf evaluate`, `imgclf robustness` and `imgclf explain`: how good a trained run is, and why."""

from __future__ import annotations

import click

from .. import api
from ..errors import UserError
from ..inference.names import TTA_MODES
from . import render
from .options import CONTEXT

SPLITS = ("train", "val", "test")


@click.command(context_settings=CONTEXT)
@click.argument("run")
@click.option("--data", help="where the images are now, or new labelled data (default: the run's training data)")
@click.option("--split", default="test", show_default=True, type=click.Choice(SPLITS))
@click.option("--tta/--no-tta", default=None,
              help="score with / without test-time augmentation and show its effect [default: the model's setting]")
@click.option("--target-accuracy", default=0.99, show_default=True, type=float,
              help="accuracy the \"unsure\" threshold must reach on the answered images")
@click.option("--group-by", help="a metadata column (of a manifest) or 'group': accuracy and macro recall per subgroup")
@click.option("--tolerance", default=0.05, show_default=True, type=float, help="flag subgroups more than this below the overall figures")
@click.option("--no-robustness", is_flag=True, help="skip accuracy under corruptions")
@click.option("--robustness-limit", default=1000, show_default=True,
              help="run the corruptions on a seeded random subset of this many test images (0: all of them)")
@click.option("--no-explain", is_flag=True, help="skip Grad-CAM on misclassified images")
@click.option("--label-issues", is_flag=True, help="also find suspected label errors (trains cross-validated models: slower)")
def evaluate(
    run, data, split, tta, target_accuracy, group_by, tolerance, no_robustness, robustness_limit, no_explain, label_issues
) -> None:
    """Metrics of a trained RUN on its held-out test split; files go to RUN/eval/.

    \b
    Also: calibration (temperature stored in the model), the confidence threshold for
    "unsure" answers, robustness, Grad-CAM, subgroups (--group-by), label issues
    (--label-issues); all in RUN/eval/report.html and RUN/model_card.md.
    """
    result = api.evaluate(
        run, data=data, split=split, tta=tta, target_accuracy=target_accuracy, group_by=group_by, tolerance=tolerance,
        robustness=not no_robustness, robustness_limit=robustness_limit, explain=not no_explain, label_issues=label_issues,
    )  # fmt: skip
    render.evaluation(result, run)


def _severities(ctx, param, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--severities {text!r}: give a comma-separated list of 1, 2, 3") from None


@click.command(context_settings=CONTEXT)
@click.argument("run")
@click.option("--data", help="where the images are now, or new labelled data (default: the run's training data)")
@click.option("--split", default="test", show_default=True, type=click.Choice(SPLITS))
@click.option("--limit", type=int, help="use at most this many images (a fixed random subset)")
@click.option("--severities", default="1,2,3", show_default=True, callback=_severities,
              help="comma-separated severities, each 1 (mild) to 3 (hard)")
@click.option("--tta", type=click.Choice(TTA_MODES), help="test-time augmentation [default: the model's setting]")
def robustness(run, data, split, limit, severities, tta) -> None:
    """Accuracy of RUN under corruptions (low light, contrast, noise, blur, JPEG, grayscale,
    crop/zoom, rotation, occlusion) at three severities; files go to RUN/eval/robustness.*."""
    render.robustness(api.robustness(run, data=data, split=split, limit=limit, severities=severities, tta=tta), run)


@click.command(context_settings=CONTEXT)
@click.argument("run")
@click.argument("images", nargs=-1, required=True)
@click.option("--class", "class_name", help="explain this class instead of the predicted one")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="folder for the overlays [default: RUN/eval/explain]")
def explain(run, images, class_name, out_dir) -> None:
    """Grad-CAM overlays: which parts of each image (files, folders, glob patterns) drove
    RUN's prediction; one PNG per image."""
    render.explanations(api.explain(run, list(images), class_name=class_name, out_dir=out_dir))
