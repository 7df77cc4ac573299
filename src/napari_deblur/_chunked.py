"""Deblurring images larger than memory part by part, on Dask.

Each chunk is deblurred with a margin of its neighbours round it (Dask's
``map_overlap``) and the margin is cut off again. The decisions a run makes
from its data (noise, weight, background, the number of iterations and
their accelerated steps: a :class:`~napari_deblur._api.Plan`) are made
once, on a block at the image's centre, and every chunk repeats them, so
that the chunks fit together into what the whole image deblurred at once
would have given.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import replace

import dask
import dask.array as da
import numpy as np

from ._api import Plan, deblur_steps, decisions, is_lazy, option_defaults
from .engine import backend, memory
from .engine.methods import METHODS

log = logging.getLogger("napari_deblur")

#: Voxels of each block on which the decisions are made (2048 x 2048,
#: 161^3): enough for the noise and the weight to be judged, a few seconds
#: of work.
SAMPLE = 2**22

#: Margin round a chunk, in standard deviations of the PSF's light per
#: square root of the iterations, by method: the methods that can be
#: deblurred in chunks. Each iteration blurs and correlates once, so reaches
#: k - 1 samples further, but what it carries fades like a random walk's
#: spread, the PSF's spread times the square root of the steps; momentum
#: (FISTA, Landweber) carries it further. Measured by
#: ``benchmarks/bench_chunked.py --sections 4`` (docs/benchmarks.md): with
#: a Gaussian of sigma 1, FISTA-TV's chunks differ by 7e-5 of the range at
#: 6 and 9e-9 at 9, RL-TV's by 5e-9 at 6; with a disc of radius 4, 4e-8
#: and 1e-7 at 6. (Counted in box widths, k, as before, a disc, whose light
#: reaches its box's edge, got half the margin: 2e-3 to 2e-2 of the range.)
#: ADMM's x step divides spectra over its whole grid, so every step reaches
#: the chunk's far side: TV's chunks differ by 3e-4 to 6e-4 of the range
#: whatever the margin (a sixth of an 8-bit step); the hyper-Laplacian's
#: shrinkage, not convex, turns that into differences of 30% and is not
#: chunked. Wiener's conjugate gradients take global step lengths, which no
#: chunk can repeat; its model by local steps is ``'landweber'``.
REACH = {
    "landweber": 9.0,
    "fista_tv": 9.0,
    "richardson_lucy": 6.0,
    "rl_tv": 6.0,
    "admm_tv": 6.0,
}


def overlap(
    method: str, psf_shape: Sequence[int], psf_spread: Sequence[float], iterations: int
) -> tuple[int, ...]:
    """Margin round a chunk, per spatial axis, for `iterations` of `method`.

    :data:`REACH` times the PSF's spread (`psf_spread`, the standard
    deviation of its light) per square root of the iterations, at least the
    PSF's size, at most what the iterations can reach, ``iterations * (k -
    1)`` for a PSF of `psf_shape` ``k``.
    """
    reach = REACH[method]
    return tuple(
        min(iterations * (k - 1), max(k, math.ceil(reach * s * math.sqrt(iterations))))
        for k, s in zip(psf_shape, psf_spread)
    )


def memory_voxels(copies: int, itemsize: int, tasks: int) -> int:
    """Voxels a task may hold when `tasks` run at once in half the available memory.

    `copies` is the method's working copies
    (:data:`~napari_deblur.engine.memory.COPIES`), `itemsize` its type's size.
    """
    have = memory.available_bytes() or 2**31
    return int(have / 2 / tasks / (copies * itemsize))


def auto_chunks(shape: Sequence[int], depth: Sequence[int], voxels: int) -> tuple[int, ...]:
    """Chunk sizes along spatial axes: squarish, whole axes where they fit.

    The largest such that a chunk with its margins of `depth` holds at most
    `voxels`.
    """
    edge = max(shape)
    while edge > 1 and math.prod(min(n, edge) + 2 * d for n, d in zip(shape, depth)) > voxels:
        edge = math.ceil(edge * 0.9) if edge > 10 else edge - 1
    return tuple(min(n, edge) for n in shape)


def deblur_chunked(image, psf, **arguments) -> da.Array:
    """:func:`~napari_deblur.deblur` chunk by chunk: a lazy Dask array of the result.

    Takes the arguments of :func:`chunked_steps` and runs its planning to
    the end.
    """
    steps = chunked_steps(image, psf, **arguments)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def chunked_steps(
    image,
    psf,
    *,
    chunks=None,
    channel_axis: int | None = None,
    time_axis: int | None = None,
    plan: Plan | None = None,
    options: dict | None = None,
) -> Generator[float, None, da.Array]:
    """:func:`~napari_deblur.deblur` chunk by chunk, its plan made step by step.

    Yields the fraction of the plan made (a step per block judged, then per
    iteration of the centre block's run), so that a thread worker can show
    it and stop between two; returns the lazy Dask array of the result.

    Parameters
    ----------
    image : array_like or dask.array.Array
        The image; a Dask array is read a chunk at a time.
    psf : array_like
        The PSF or point-light photo (not estimated, not varying blur).
    chunks : int, sequence of int, 'auto' or None
        Chunk size along the spatial axes (one number for all); None keeps a
        Dask array's chunks; ``'auto'`` fits them to the available memory.
    channel_axis, time_axis : int or None
        As for :func:`~napari_deblur.deblur`: channels stay together, time
        points are chunks of one frame.
    plan : Plan or None
        The decisions to repeat; made on the centre block when None.
    options : dict, optional
        The other keyword arguments of :func:`~napari_deblur.deblur`; those
        left out take its defaults.

    Returns
    -------
    dask.array.Array
        The deblurred image, computed chunk by chunk when asked.
    """
    options = {**option_defaults(), **(options or {})}
    if isinstance(psf, str) or options.get("varying") or options.get("refine_psf"):
        raise ValueError(
            "chunked deblurring takes one measured PSF (not estimated, refined or varying)"
        )
    if not isinstance(image, da.Array):
        # Not a Dask array, but read on demand: a Zarr array.
        image = da.from_zarr(image) if is_lazy(image) else da.asarray(image)
    if image.dtype.kind not in "iubf":
        raise TypeError(f"image must hold real numbers, got an array of {image.dtype}")
    ndim = image.ndim
    axes = {}
    for name, axis in (("channel_axis", channel_axis), ("time_axis", time_axis)):
        if axis is not None:
            if not -ndim <= axis < ndim:
                raise ValueError(f"{name} {axis} is out of range for an image of {ndim} axes")
            axes[name] = axis % ndim
    if len(set(axes.values())) < len(axes):
        # Said now, not after part of the image is deblurred.
        raise ValueError("time_axis and channel_axis must differ")
    spatial = [a for a in range(ndim) if a not in axes.values()]
    bad_pixels = options["bad_pixels"]
    options = {k: v for k, v in options.items() if k != "bad_pixels"}
    options["channel_axis"] = axes.get("channel_axis")
    if bad_pixels is not None:
        # Chunked alongside the image, so that each chunk has its own.
        bad_pixels = da.asarray(bad_pixels) != 0
        if bad_pixels.ndim == len(spatial):
            bad_pixels = bad_pixels[
                tuple(None if a in axes.values() else slice(None) for a in range(ndim))
            ]
        try:
            bad_pixels = da.broadcast_to(bad_pixels, image.shape)
        except ValueError:
            raise ValueError(
                f"bad_pixels of shape {bad_pixels.shape} does not fit the image {image.shape}"
            ) from None
    # Dask's threads run a chunk on each core at once; a cluster's workers
    # each have their own memory (and one thread, from the command line).
    tasks = dask.system.CPU_COUNT
    itemsize = backend.float_dtype(image.dtype).itemsize
    shape = [image.shape[a] for a in spatial]
    if isinstance(chunks, str) and chunks != "auto":
        raise ValueError(f"chunks must be sizes or 'auto', got {chunks!r}")
    if chunks is not None and not isinstance(chunks, str):
        sizes = np.asarray(chunks, dtype=int).ravel()
        if sizes.size not in (1, len(spatial)) or np.any(sizes < 1):
            raise ValueError(
                f"chunks must be one positive size or one per spatial axis ({len(spatial)}), "
                f"got {chunks}"
            )
        chunks = np.broadcast_to(sizes, (len(spatial),))
    method = plan.method if plan is not None else options["method"]
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method not in ("auto", *REACH):
        raise ValueError(
            f"method {method!r} cannot be deblurred in chunks (its chunks would not agree "
            f"with the whole image); choose one of {tuple(REACH)}"
        )
    # A chunk or block holds every channel of its voxels.
    channels = image.shape[axes["channel_axis"]] if "channel_axis" in axes else 1
    if plan is None:
        # The plan is made on blocks of SAMPLE voxels, within the memory any
        # method needs, or of a chunk where that is larger.
        worst = max(memory.COPIES.values())
        voxels = min(SAMPLE, memory_voxels(worst, itemsize, 1) // channels)
        sample = auto_chunks(shape, [0] * len(shape), voxels)
        if chunks is None:
            sample = np.maximum(sample, [max(image.chunks[a]) for a in spatial])
        elif not isinstance(chunks, str):
            sample = np.maximum(sample, chunks)
        plan = yield from _planning(image, bad_pixels, psf, spatial, axes, sample, options)
    depth = overlap(plan.method, plan.psf_shape, plan.psf_spread, plan.iterations)
    if chunks is None:
        sizes = [max(image.chunks[a]) for a in spatial]
    elif isinstance(chunks, str):
        voxels = memory_voxels(memory.COPIES[plan.method], itemsize, tasks) // channels
        sizes = auto_chunks(shape, depth, voxels)
    else:
        sizes = chunks
    log.info(
        "deblurring in chunks of %s (margins %s): %s, %s iterations, noise %s, weight %s",
        "x".join(map(str, sizes)),
        "x".join(map(str, depth)),
        plan.method,
        plan.iterations,
        ", ".join(f"{math.sqrt(v):.3g}" for v in plan.variance),
        ", ".join(f"{w:.3g}" for w in plan.weight) or "none",
    )
    layout = {a: -1 for a in axes.values()}
    if "time_axis" in axes:
        layout[axes["time_axis"]] = 1
    layout.update({a: _split(image.shape[a], s, d) for a, s, d in zip(spatial, sizes, depth)})
    given = image.chunks
    image = image.rechunk(layout)
    arrays = [image] if bad_pixels is None else [image, bad_pixels.rechunk(image.chunks)]
    margins = {a: 0 for a in range(ndim)}
    margins.update({a: min(d, n) for a, d, n in zip(spatial, depth, shape)})
    out_dtype = backend.float_dtype(image.dtype)

    def deblur_block(block: np.ndarray, bad: np.ndarray | None = None) -> np.ndarray:
        if bad is not None and "time_axis" in axes:
            # The block's one time point: frames share their bad pixels.
            bad = np.take(bad, 0, axis=axes["time_axis"])
        steps = deblur_steps(
            block,
            psf,
            time_axis=axes.get("time_axis"),
            plan=plan,
            bad_pixels=bad,
            **options,
        )
        (last,) = deque(steps, maxlen=1)
        return last.image.astype(out_dtype, copy=False)

    result = da.map_overlap(
        deblur_block,
        *arrays,
        depth=margins,
        boundary="none",
        trim=True,
        dtype=out_dtype,
        meta=np.empty((0,) * ndim, out_dtype),
    )
    # A lazy array comes back in its own spatial chunks (those smaller than
    # the margin were deblurred joined), a time point a chunk, its channels
    # together.
    return result.rechunk({a: given[a] for a in spatial}) if chunks is None else result


def _split(length: int, size: int, margin: int) -> tuple[int, ...]:
    """Chunks of `size` along an axis of `length`, none smaller than `margin`.

    Dask takes a chunk's margin from its neighbours, so a chunk must be at
    least as large as the margin: a short last chunk joins the one before.
    """
    size = max(int(size), margin, 1)
    chunks = [size] * (length // size)
    rest = length - size * len(chunks)
    if rest and (rest >= margin or not chunks):
        chunks.append(rest)
    elif rest:
        chunks[-1] += rest
    return tuple(chunks)


def _planning(
    image, bad_pixels, psf, spatial, axes, sizes, options
) -> Generator[float, None, Plan]:
    """The plan for the whole image, from blocks of `sizes` spread over it.

    The noise, weight, background and level are the medians of those judged
    on the block at the centre and on the blocks round the quartiles (of the
    middle time point), so that an empty or unusual centre does not decide
    for the image; the iterations and their steps are then those of a run
    on the centre block with these decisions.
    """
    time_axis = axes.get("time_axis")
    options = dict(options)
    if time_axis is not None and options["channel_axis"] is not None:
        options["channel_axis"] -= options["channel_axis"] > time_axis

    def block_at(fractions):
        index = [slice(None)] * image.ndim
        for a, e, f in zip(spatial, sizes, fractions):
            n, e = image.shape[a], int(e)
            start = min(max(0, round(f * n - e / 2)), max(0, n - e))
            index[a] = slice(start, start + e)
        if time_axis is not None:
            index[time_axis] = image.shape[time_axis] // 2
        index = tuple(index)
        bad = None if bad_pixels is None else np.asarray(bad_pixels[index])
        return index, np.asarray(image[index]), bad

    def place(index):
        # Where a block is, hashable (slices are not before Python 3.12).
        return tuple((i.start, i.stop) if isinstance(i, slice) else i for i in index)

    centre = block_at([0.5] * len(spatial))
    blocks = {place(centre[0]): centre}
    for corner in itertools.product((0.25, 0.75), repeat=len(spatial)):
        block = block_at(corner)
        blocks.setdefault(place(block[0]), block)
    decided = []
    for _, block, bad in blocks.values():
        decided.append(decisions(block, psf, **{**options, "bad_pixels": bad}))
        yield len(decided) / (len(blocks) + 1)
    first = decided[0]

    def median(name):
        return tuple(np.median([getattr(p, name) for p in decided], axis=0).tolist())

    # Each per-channel number (weight, gain and floor may be absent).
    per_channel = ("variance", "weight", "background", "level", "gain", "floor")
    agreed = replace(
        first,
        **{name: median(name) for name in per_channel if getattr(first, name)},
        iterations=None,
        schedule=(),
    )
    _, block, bad = centre
    for last in deblur_steps(block, psf, **{**options, "bad_pixels": bad, "plan": agreed}):
        yield (len(blocks) + last.fraction) / (len(blocks) + 1)
    return last.plan
