"""Sweep host-train's recipe on a GPU: the same model, data and training in JAX, several seeds at once.

The shipped model is always trained by ``host-train`` (TensorFlow). A run of that recipe takes about 50
minutes on a 2-core machine, too long to compare settings within seed noise (one seed to the next moves
MNIST test accuracy by 0.1-0.25 points). This replica runs the recipe where TensorFlow is not installed but
JAX is (a lent GPU machine): a handful of seeds of one setting train together in about 100 s on one GPU.
Its numbers are float accuracy of the replica, not of an exported int8 model; they say which settings are
worth a host-train run.

What it replicates (``host.train``, ``host.augment``, ``host.model``): conv-BN-ReLU stages with 2x2 max
pooling and global average pooling, dropout and a softmax over 11 classes; Glorot-uniform weights; AdamW
(eps 1e-7, weight decay applied to every weight) on a cosine schedule with linear warm-up (500 steps);
label smoothing; BatchNorm momentum 0.9, epsilon 1e-3; rotation, shift, zoom and x-shear per image, then
stroke thickness, blur and noise at random strengths, with a share of images left clean. Differences: the
four geometric changes are composed into one resampling (Keras resamples after each; ``--resample-each``
does the same), and the random streams are JAX's.

Other knobs beyond host-train's recipe: ``--elastic ALPHA`` adds Simard's elastic distortion to the warp,
and ``--init models.npz`` starts from saved models (the same seeds) instead of fresh weights, for a
fine-tune. ``--leave-out KINDS`` drops kinds of negative from the training (as ``host-train --leave-out``)
and ``--piece-weight W`` weighs the pieces of digits apart; both need data dumped with the negatives' kinds.
Each result also counts the held-out negatives dropped as the pipeline decides, and rejected by kind.

Distillation: ``train --save teacher.npz`` keeps the models it trained; a later ``train --teacher
teacher.npz --distill W --temperature T`` adds their mean softened prediction on each augmented batch as a
second target (weight W). ``to-keras`` writes one saved model as host.model's Keras model with a training
record, for host-export, after checking that both give the same probabilities.

Usage (the data is made where host-train runs, the sweep where JAX is):
    python -m tools.recipe_sweep dump --data-dir MNIST_DIR --out sweep.npz
    python -m tools.recipe_sweep train --data sweep.npz --name base --seeds 1,2,3 [--out results.jsonl]
        [--widths 16,32,64 --convs 2,2,1 --epochs 30 --learning-rate 0.006 --label-smoothing 0.05 ...]
        [--save models.npz] [--teacher teacher.npz --distill 0.5 --temperature 1]
    python -m tools.recipe_sweep to-keras --models models.npz --seed 1 --out runs/NAME/digits.keras
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

CLASSES = 11  # the digits and "none"
NONE = 10
MNIST_SPLIT = 57000  # the first rows of the dumped training set are MNIST's own (95 % of 60,000)
CONV_DIMS = ("NHWC", "HWIO", "NHWC")  # images and feature maps NHWC, kernels HWIO, as Keras keeps them


@dataclass(frozen=True)
class Recipe:
    """One setting of the sweep; the defaults are the shipped model's (``host-train`` with the rate,
    smoothing and dropout that host-tune chose)."""

    widths: tuple[int, ...] = (16, 32, 64)
    convs: tuple[int, ...] = (2, 2, 1)
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.006
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    dropout: float = 0.1
    rotation: float = 12.0  # degrees
    shift: float = 0.1  # of the image
    zoom: float = 0.1
    shear: float = 0.15
    camera: float = 1.0  # scale of the thickness, blur and noise strengths (0: geometry only)
    clean_share: float = 0.3
    resample_each: bool = False  # one resampling per geometric change, as the Keras layers do
    subset: str = "all"  # "all"; "mnist": MNIST's digits only; "digits": without the negatives
    ema: float = 0.0  # momentum of an exponential moving average of the weights, used at the end (0: none)
    none_weight: float = 1.0  # the loss weight of a negative against a digit's 1
    teacher: str = ""  # models saved by ``train --save``: their mean soft prediction is a second target
    distill: float = 0.0  # the weight of the teacher's target against the label's (0: no teacher)
    temperature: float = 2.0  # both softmaxes are taken at this temperature for the teacher's target
    elastic: float = 0.0  # Simard's elastic distortion: alpha, the scale of the smoothed field (0: none)
    elastic_sigma: float = 4.0  # and sigma, the width in px of the Gaussian that smooths it
    init: str = ""  # models saved by ``train --save`` (the same seeds) to start from, for a fine-tune
    leave_out: tuple[str, ...] = ()  # kinds of negative (host.negatives.KINDS) left out of the training
    piece_weight: float = 1.0  # the loss weight of a "piece" negative (a digit cut in two), times none_weight


def dump(data_dir: str, out: str) -> None:
    """Write host-train's training data (5 % of MNIST held out, seed 1234) and MNIST test to ``out``, with
    the kind of each negative (an index into host.negatives.KINDS; -1 for a digit)."""
    from host.data import Dataset, split_validation
    from host.negatives import KINDS
    from host.train import TrainSettings, load_training_data

    settings = TrainSettings()
    train, held_out, _, test, generated = load_training_data(
        data_dir,
        None,
        settings.validation_fraction,
        settings.seed,
        settings.negatives,
        settings.negatives_seed,
        device_digits=settings.device_digits,
    )
    # load_training_data splits the negatives as it splits the digits (the same shuffle for the same
    # length and seed) and puts them last, so their kinds split the same way line up with them.
    kinds_train, kinds_held_out = split_validation(
        Dataset(generated.kinds, generated.kinds), settings.validation_fraction, settings.seed
    )

    def kinds_of(data, negative_kinds) -> np.ndarray:
        kinds = np.full(len(data.labels), -1, np.int8)
        kinds[len(kinds) - len(negative_kinds.labels) :] = negative_kinds.labels
        if not np.array_equal(kinds >= 0, data.labels == NONE):
            raise SystemExit("dump: the negatives' kinds do not line up with the negatives")
        return kinds

    np.savez_compressed(
        out,
        xtr=train.images,
        ytr=train.labels,
        xva=held_out.images,
        yva=held_out.labels,
        xte=test.images,
        yte=test.labels,
        ktr=kinds_of(train, kinds_train),
        kva=kinds_of(held_out, kinds_held_out),
        kind_names=np.asarray(KINDS),
    )


def model_functions(recipe: Recipe):
    """``init(key) -> (params, stats)`` and ``forward(params, stats, x, training, key) -> (logits,
    new_stats)`` of the recipe's model, host.model's CNN. Conv kernels are HWIO, as Keras keeps them."""
    import jax
    import jax.numpy as jnp

    layers = [(s, i) for s, convs in enumerate(recipe.convs) for i in range(convs)]

    def glorot(key, shape, fan_in, fan_out):
        limit = math.sqrt(6 / (fan_in + fan_out))
        return jax.random.uniform(key, shape, jnp.float32, -limit, limit)

    def init(key):
        params, stats, c_in = {}, {}, 1
        for s, i in layers:
            key, sub = jax.random.split(key)
            width, name = recipe.widths[s], f"conv{s}_{i}"
            params[name] = glorot(sub, (3, 3, c_in, width), 9 * c_in, 9 * width)
            params[name + "/gamma"], params[name + "/beta"] = jnp.ones(width), jnp.zeros(width)
            stats[name + "/mean"], stats[name + "/var"] = jnp.zeros(width), jnp.ones(width)
            c_in = width
        _, sub = jax.random.split(key)
        params["dense"] = glorot(sub, (c_in, CLASSES), c_in, CLASSES)
        params["dense/bias"] = jnp.zeros(CLASSES)
        return params, stats

    def forward(params, stats, x, training, key):
        new_stats = {}
        for s, i in layers:
            name = f"conv{s}_{i}"
            x = jax.lax.conv_general_dilated(x, params[name], (1, 1), "SAME", dimension_numbers=CONV_DIMS)
            if training:
                mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
                new_stats[name + "/mean"] = 0.9 * stats[name + "/mean"] + 0.1 * mean
                new_stats[name + "/var"] = 0.9 * stats[name + "/var"] + 0.1 * var
            else:
                mean, var = stats[name + "/mean"], stats[name + "/var"]
            x = (x - mean) / jnp.sqrt(var + 1e-3) * params[name + "/gamma"] + params[name + "/beta"]
            x = jax.nn.relu(x)
            if i == recipe.convs[s] - 1 and s < len(recipe.widths) - 1:
                x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        x = x.mean((1, 2))
        if training and recipe.dropout > 0:
            keep = jax.random.bernoulli(key, 1 - recipe.dropout, x.shape)
            x = jnp.where(keep, x / (1 - recipe.dropout), 0.0)
        return x @ params["dense"] + params["dense/bias"], new_stats

    return init, forward


def teacher_function(recipe: Recipe):
    """``probabilities(x)``: the mean softmax, at the recipe's temperature, of the models saved in
    ``recipe.teacher`` (None when the recipe has no teacher)."""
    if not recipe.distill:
        return None
    import jax

    saved = load_models(recipe.teacher)
    _, forward = model_functions(saved["recipe"])
    params, stats = saved["params"], saved["stats"]

    def probabilities(x):
        logits = jax.vmap(lambda p, s: forward(p, s, x, False, None)[0])(params, stats)
        return jax.nn.softmax(logits / recipe.temperature).mean(0)

    return probabilities


def save_models(path: str, recipe: Recipe, seeds: list[int], params, stats, images, reference) -> None:
    """Write the trained models (one per seed, stacked) with their recipe, and a few images with each
    model's probabilities on them, which a conversion checks itself against."""
    arrays = {f"params/{k}": np.asarray(v) for k, v in params.items()}
    arrays.update({f"stats/{k}": np.asarray(v) for k, v in stats.items()})
    np.savez(
        path,
        recipe=json.dumps(asdict(recipe)),
        seeds=np.asarray(seeds),
        images=images,
        reference=np.asarray(reference),
        **arrays,
    )


def load_models(path: str) -> dict:
    with np.load(path) as stored:
        fields = json.loads(str(stored["recipe"]))
        recipe = Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
        return {
            "recipe": recipe,
            "params": {k[7:]: stored[k] for k in stored.files if k.startswith("params/")},
            "stats": {k[6:]: stored[k] for k in stored.files if k.startswith("stats/")},
            "seeds": stored["seeds"].tolist(),
            "images": stored["images"],
            "reference": stored["reference"],
        }


def train(recipe: Recipe, data: dict, seeds: list[int], log=print, save: str | None = None) -> dict:
    """Train one model per seed together; return the accuracies of each (float): by the top of the 11
    classes, and as the pipeline decides (the best digit unless "none" reaches 0.7)."""
    import jax
    import jax.numpy as jnp
    import optax

    images, labels = data["xtr"], data["ytr"].astype(np.int32)
    kinds, kind_names = data.get("ktr"), [str(name) for name in data.get("kind_names", ())]
    unknown = sorted(set(recipe.leave_out) - set(kind_names))
    if (recipe.leave_out or recipe.piece_weight != 1.0) and kinds is None:
        raise SystemExit("--leave-out and --piece-weight need data dumped with the kinds of the negatives")
    if unknown:
        raise SystemExit(f"--leave-out {','.join(unknown)}: the kinds are {','.join(kind_names)}")
    if kinds is None:
        kinds = np.full(len(labels), -1, np.int8)
    if recipe.leave_out:
        kept = ~np.isin(kinds, [kind_names.index(kind) for kind in recipe.leave_out])
        images, labels, kinds = images[kept], labels[kept], kinds[kept]
    if recipe.subset == "mnist":
        images, labels, kinds = images[:MNIST_SPLIT], labels[:MNIST_SPLIT], kinds[:MNIST_SPLIT]
    elif recipe.subset == "digits":
        images, labels, kinds = images[labels != NONE], labels[labels != NONE], kinds[labels != NONE]
    weights = np.where(labels == NONE, recipe.none_weight, 1.0).astype(np.float32)
    if "piece" in kind_names:
        weights[kinds == kind_names.index("piece")] *= recipe.piece_weight
    steps_per_epoch = len(images) // recipe.batch_size
    total = steps_per_epoch * recipe.epochs
    warmup = min(500, total // 10)
    schedule = optax.warmup_cosine_decay_schedule(0.0, recipe.learning_rate, warmup, warmup + total, 0.0)
    optimizer = optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-7, weight_decay=recipe.weight_decay)
    init, forward = model_functions(recipe)
    teacher_probabilities = teacher_function(recipe)
    yy, xx = jnp.mgrid[0:28, 0:28].astype(jnp.float32)
    centre = 13.5
    # The Gaussian that smooths an elastic field, as a 28x28 matrix (zero beyond the image, as Simard's
    # filter pads): G @ field @ G.T smooths both axes.
    offsets = np.arange(28)[:, None] - np.arange(28)[None, :]
    smoothing = jnp.asarray(np.exp(-(offsets**2) / (2 * recipe.elastic_sigma**2)), jnp.float32)
    smoothing = smoothing / smoothing.sum(1, keepdims=True).max()

    def sample(image, sx, sy):
        return jax.scipy.ndimage.map_coordinates(image, [sy, sx], order=1, mode="constant", cval=0.0)

    def warp(image, key):
        """One random rotation, shift, zoom (x and y apart) and x-shear about the centre."""
        k = jax.random.split(key, 6)
        angle = jnp.deg2rad(jax.random.uniform(k[0], (), minval=-recipe.rotation, maxval=recipe.rotation))
        tx, ty = jax.random.uniform(k[1], (2,), minval=-recipe.shift, maxval=recipe.shift) * 28
        zx = 1 + jax.random.uniform(k[2], (), minval=-recipe.zoom, maxval=recipe.zoom)
        zy = 1 + jax.random.uniform(k[3], (), minval=-recipe.zoom, maxval=recipe.zoom)
        shear = jax.random.uniform(k[4], (), minval=-recipe.shear, maxval=recipe.shear)
        cos, sin = jnp.cos(angle), jnp.sin(angle)
        dx, dy = xx - centre, yy - centre
        if recipe.resample_each:
            image = sample(image, cos * dx + sin * dy + centre, -sin * dx + cos * dy + centre)
            image = sample(image, xx - tx, yy - ty)
            image = sample(image, dx * zx + centre, dy * zy + centre)
            return sample(image, dx - shear * dy + centre, yy)
        ox, oy = dx - tx, dy - ty  # each output pixel back to its source: shift, rotation, shear, zoom
        rx, ry = cos * ox + sin * oy, -sin * ox + cos * oy
        sx, sy = (rx - shear * ry) * zx + centre, ry * zy + centre
        if recipe.elastic:
            field = jax.random.uniform(k[5], (2, 28, 28), minval=-1.0, maxval=1.0)
            ex, ey = recipe.elastic * (smoothing @ field @ smoothing.T)
            sx, sy = sx + ex, sy + ey
        return sample(image, sx, sy)

    blur_kernel = (jnp.outer(jnp.array([1.0, 2.0, 1.0]), jnp.array([1.0, 2.0, 1.0])) / 16).reshape(3, 3, 1, 1)
    pad = ((0, 0), (0, 1), (0, 1), (0, 0))  # a 2x2 window, "SAME" as TensorFlow pads it

    def augment(x, key):
        n = x.shape[0]
        k = jax.random.split(key, 7)
        g = jax.vmap(warp)(x, jax.random.split(k[0], n))[..., None]
        dilated = jax.lax.reduce_window(g, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 1, 1, 1), pad)
        eroded = -jax.lax.reduce_window(-g, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 1, 1, 1), pad)
        t = jax.random.uniform(k[1], (n, 1, 1, 1), minval=-0.6, maxval=0.6) * recipe.camera
        g = jnp.where(t > 0, g + t * (dilated - g), g - t * (eroded - g))
        for j in range(2):
            blurred = jax.lax.conv_general_dilated(
                g, blur_kernel, (1, 1), "SAME", dimension_numbers=CONV_DIMS
            )
            g = g + jax.random.uniform(k[2 + j], (n, 1, 1, 1), maxval=recipe.camera) * (blurred - g)
        noise = jax.random.uniform(k[4], (n, 1, 1, 1), maxval=0.05 * recipe.camera)
        g = jnp.clip(g + noise * jax.random.normal(k[5], g.shape), 0.0, 1.0)
        clean = jax.random.uniform(k[6], (n, 1, 1, 1)) < recipe.clean_share
        return jnp.where(clean, x[..., None], g)

    def loss_of(params, stats, x, y, weight, key):
        logits, new_stats = forward(params, stats, x, True, key)
        target = jax.nn.one_hot(y, CLASSES) * (1 - recipe.label_smoothing) + recipe.label_smoothing / CLASSES
        loss = -(target * jax.nn.log_softmax(logits)).sum(-1)
        if teacher_probabilities is not None:
            # Hinton's distillation: the teacher's softened prediction as a second target, its gradient
            # scaled back by the temperature squared.
            soft = jax.lax.stop_gradient(teacher_probabilities(x))
            soft_loss = -(soft * jax.nn.log_softmax(logits / recipe.temperature)).sum(-1)
            loss = (1 - recipe.distill) * loss + recipe.distill * recipe.temperature**2 * soft_loss
        return (weight * loss).mean(), new_stats

    def step(state, batch, all_images, all_labels, all_weights):
        params, stats, opt_state, key, average = state
        key, k_augment, k_dropout = jax.random.split(key, 3)
        x = augment(all_images[batch].astype(jnp.float32) / 255.0, k_augment)
        (loss, stats), grads = jax.value_and_grad(loss_of, has_aux=True)(
            params, stats, x, all_labels[batch], all_weights[batch], k_dropout
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        average = jax.tree.map(lambda a, p: recipe.ema * a + (1 - recipe.ema) * p, average, params)
        return (params, stats, opt_state, key, average), loss

    def epoch(state, batches, all_images, all_labels, all_weights):
        return jax.lax.scan(lambda s, b: step(s, b, all_images, all_labels, all_weights), state, batches)

    run_epoch = jax.jit(jax.vmap(epoch, in_axes=(0, 0, None, None, None)))
    if recipe.init:
        start = load_models(recipe.init)
        if start["seeds"] != list(seeds):
            raise SystemExit(f"--init {recipe.init}: it holds seeds {start['seeds']}, not {list(seeds)}")
        params = {k: jnp.asarray(v) for k, v in start["params"].items()}
        stats = {k: jnp.asarray(v) for k, v in start["stats"].items()}
    else:
        models = [init(jax.random.PRNGKey(seed)) for seed in seeds]
        params = jax.tree.map(lambda *v: jnp.stack(v), *[m[0] for m in models])
        stats = jax.tree.map(lambda *v: jnp.stack(v), *[m[1] for m in models])
    state = (
        params,
        stats,
        jax.vmap(optimizer.init)(params),
        jnp.stack([jax.random.PRNGKey(1000 + s) for s in seeds]),
        params,
    )
    all_images, all_labels, all_weights = jnp.asarray(images), jnp.asarray(labels), jnp.asarray(weights)
    orders = [np.random.default_rng(seed) for seed in seeds]
    started = time.monotonic()
    for e in range(recipe.epochs):
        batches = np.stack(
            [
                o.permutation(len(images))[: steps_per_epoch * recipe.batch_size].reshape(steps_per_epoch, -1)
                for o in orders
            ]
        )
        state, losses = run_epoch(state, jnp.asarray(batches), all_images, all_labels, all_weights)
        if e == 0 or (e + 1) % 10 == 0:
            mean_loss = np.round(np.asarray(losses).mean(axis=1), 4).tolist()
            log(f"epoch {e + 1}: loss {mean_loss}, {time.monotonic() - started:.0f} s")
    params, stats = (state[4] if recipe.ema else state[0]), state[1]

    def predicted(x_all):
        out = []
        for i in range(0, len(x_all), 2000):
            x = jnp.asarray(x_all[i : i + 2000], jnp.float32)[..., None] / 255.0
            out.append(jax.vmap(lambda p, s, x=x: forward(p, s, x, False, None)[0])(params, stats))
        return np.asarray(jax.nn.softmax(jnp.asarray(np.concatenate([np.asarray(o) for o in out], axis=1))))

    if save:
        save_models(save, recipe, seeds, params, stats, data["xte"][:64], predicted(data["xte"][:64]))
    digits = data["yva"] < NONE
    held_out_probabilities = predicted(data["xva"])
    held_out = held_out_probabilities.argmax(-1)
    test_probabilities = predicted(data["xte"])  # (seeds, n, classes)
    test = test_probabilities.argmax(-1)
    # As the pipeline decides: the best digit, unless "none" reaches its threshold (0.7)
    kept = test_probabilities[..., NONE] < 0.7
    as_pipeline = np.where(kept, test_probabilities[..., :NONE].argmax(-1), NONE)
    held_out_none = held_out_probabilities[:, ~digits, NONE] >= 0.7
    by_kind = {}
    if "kva" in data:
        for k, kind in enumerate(kind_names):
            of_kind = data["kva"] == k
            by_kind[kind] = {
                "rejected": (held_out[:, of_kind] == NONE).mean(1).tolist(),
                "dropped_as_pipeline": (held_out_probabilities[:, of_kind, NONE] >= 0.7).mean(1).tolist(),
            }
    return {
        "seconds": round(time.monotonic() - started, 1),
        "held_out_digits": (held_out[:, digits] == data["yva"][digits][None]).mean(1).tolist(),
        "held_out_negatives_rejected": (held_out[:, ~digits] == NONE).mean(1).tolist(),
        "test": (test == data["yte"][None]).mean(1).tolist(),
        "test_called_none": (test == NONE).mean(1).tolist(),
        "test_as_pipeline": (as_pipeline == data["yte"][None]).mean(1).tolist(),
        "test_dropped_as_pipeline": (~kept).mean(1).tolist(),
        "held_out_negatives_dropped_as_pipeline": held_out_none.mean(1).tolist(),
        "held_out_negatives_by_kind": by_kind,
    }


def training_command(recipe: Recipe, seeds: list[int], models_path: str) -> str:
    """The ``train`` command that trains ``recipe`` (its flags where they differ from the defaults)."""
    flags = []
    for field, value in asdict(recipe).items():
        if value == getattr(Recipe(), field):
            continue
        flag = "--" + field.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag)
        else:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)]
    start = "python -m tools.recipe_sweep train --data sweep.npz --seeds " + ",".join(map(str, seeds))
    return " ".join([start, *flags, "--save", models_path])


def to_keras(models_path: str, seed: int, out: str) -> None:
    """Write one saved model as host.model's Keras model (``out``, a .keras file), with a training record
    beside it that host-export puts on the model card. Refuses when the Keras model's probabilities on the
    saved images differ from the JAX model's."""
    from pathlib import Path

    from host.model import ModelSpec, build_model, count_macs
    from host.train import TrainSettings, history_path

    saved = load_models(models_path)
    recipe = saved["recipe"]
    if seed not in saved["seeds"]:
        raise SystemExit(f"--seed {seed}: {models_path} holds seeds {saved['seeds']}")
    index = saved["seeds"].index(seed)
    model = build_model(
        ModelSpec(
            stage_widths=recipe.widths, convs_per_stage=recipe.convs, dropout=recipe.dropout, classes=CLASSES
        )
    )
    params = {k: v[index] for k, v in saved["params"].items()}
    stats = {k: v[index] for k, v in saved["stats"].items()}
    for s, convs in enumerate(recipe.convs):
        for i in range(convs):
            name = f"conv{s}_{i}"
            model.get_layer(f"conv{s + 1}_{i + 1}").set_weights([params[name]])
            model.get_layer(f"bn{s + 1}_{i + 1}").set_weights(
                [params[name + "/gamma"], params[name + "/beta"], stats[name + "/mean"], stats[name + "/var"]]
            )
    model.get_layer("digit").set_weights([params["dense"], params["dense/bias"]])
    probabilities = model.predict(saved["images"][..., None].astype(np.float32) / 255.0, verbose=0)
    difference = float(np.abs(probabilities - saved["reference"][index]).max())
    # A GPU runs float32 convolutions in TF32 by default, which moves a probability by up to about 1e-3;
    # a weight put in the wrong place moves them by tenths.
    if difference > 1e-2:
        raise SystemExit(f"{models_path}: the Keras model differs from the JAX model by {difference:.2g}")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    defaults = TrainSettings()
    record = {
        "settings": {
            "trained_by": "tools.recipe_sweep (JAX)",
            **asdict(recipe),
            "seed": seed,
            "validation_fraction": defaults.validation_fraction,
            "negatives": defaults.negatives,
            "negatives_seed": defaults.negatives_seed,
            "device_digits": defaults.device_digits,
        },
        "command": f"{training_command(recipe, saved['seeds'], models_path)}; "
        f"python -m tools.recipe_sweep to-keras --models {models_path} --seed {seed} --out {out}",
        "params": int(model.count_params()),
        "macs": count_macs(model),
    }
    history_path(path).write_text(json.dumps(record, indent=1) + "\n")
    print(f"{path}: seed {seed} of {models_path}, largest difference from JAX {difference:.2g}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.recipe_sweep", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump", help="write host-train's data to an .npz file")
    dumping.add_argument("--data-dir", required=True, help="the four MNIST IDX files")
    dumping.add_argument("--out", required=True)
    training = commands.add_parser("train", help="train one setting, several seeds at once (JAX)")
    training.add_argument("--data", required=True, help="an .npz file from dump")
    training.add_argument("--name", required=True)
    training.add_argument("--seeds", default="1,2,3")
    training.add_argument("--out", help="append the results to this JSON-lines file")
    training.add_argument("--save", help="write the trained models (.npz) here: a teacher, or for to-keras")
    for field, default in asdict(Recipe()).items():
        flag = "--" + field.replace("_", "-")
        if isinstance(default, bool):
            training.add_argument(flag, action="store_true")
        elif isinstance(default, tuple):
            training.add_argument(flag, default=",".join(map(str, default)))
        else:
            training.add_argument(flag, type=type(default), default=default)
    converting = commands.add_parser("to-keras", help="write a saved model as host.model's Keras model")
    converting.add_argument("--models", required=True, help="an .npz file from train --save")
    converting.add_argument("--seed", type=int, required=True, help="which of its models")
    converting.add_argument("--out", required=True, help="the .keras file to write (then host-export it)")
    args = parser.parse_args(argv)
    if args.command == "to-keras":
        to_keras(args.models, args.seed, args.out)
        return 0
    if args.command == "dump":
        dump(args.data_dir, args.out)
        return 0
    values = {
        field: tuple(v for v in getattr(args, field).split(",") if v)
        if isinstance(default, tuple)
        else getattr(args, field)
        for field, default in asdict(Recipe()).items()
    }
    values["widths"], values["convs"] = tuple(map(int, values["widths"])), tuple(map(int, values["convs"]))
    recipe = Recipe(**values)
    with np.load(args.data) as stored:
        data = dict(stored)
    result = {"name": args.name, "recipe": asdict(recipe), "seeds": args.seeds}
    result.update(
        train(
            recipe,
            data,
            [int(s) for s in args.seeds.split(",")],
            log=lambda m: print(f"{args.name}: {m}", flush=True),
            save=args.save,
        )
    )
    print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "a") as out:
            out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
