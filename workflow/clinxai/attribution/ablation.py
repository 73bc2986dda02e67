"""FeatureAblation and ShapleyValueSampling as coalitions x forward passes, batched (issue 22).

Both methods evaluate the model on copies of a case in which a set of features (supervoxels of the feature mask) is
present and the rest is at the baseline: input = where(present[mask], x, baseline). captum builds every copy
and its attribution mask at full size, one feature at a time; here a batch of coalitions becomes inputs in one
tensor operation and a feature's score is written to its voxels once at the end. Same formulas, same permutations
(drawn with torch.randperm from the global generator, in captum's order) and so the same maps within float
tolerance (tests/test_ablation.py):

- FeatureAblation: score_j = f(x)[t] - f(x without feature j)[t];
- ShapleyValueSampling: per random order of the features, starting from f(baseline), each feature's increase of
  f(.)[t] when it is added; the mean over orders.

Where the model's family names a layer chain (clinxai.models, as for incremental Occlusion) and a case's supervoxels
are small against the input (the paper's 50 per 128^3 channel, boxes of ~4 % of the volume), both evaluate their
coalitions by incremental inference instead (clinxai.attribution.incremental_chain): FeatureAblation recomputes each
layer only inside the removed supervoxel's box from the case's activations, ShapleyValueSampling inside the added
supervoxel's box from the previous step's, every order's state kept per row. The same formulas and draws; equal
within float tolerance (tests/test_incremental_ablation.py).
"""

from __future__ import annotations

import numpy as np
import torch

from ..inference import describe
from .incremental_chain import BoxedChain, batch_box, feature_boxes, gather_rows

PAYS_BELOW = 0.5  # incremental where a typical box's convolutions cost under this share of a whole pass's
STATE_BYTES = 8 * 2**30  # ShapleyValueSampling: the orders evaluated side by side keep at most this much state


class Coalitions:
    """Evaluate f on a case with coalitions of features present (rows of a bool matrix), in batches."""

    def __init__(self, forward, x: tuple, baselines: tuple, masks: tuple, target: int, batch: int, n: int):
        self.forward, self.target, self.batch, self.n = forward, int(target), max(1, int(batch)), n
        self.x = x
        self.base = tuple(torch.as_tensor(b, dtype=t.dtype, device=t.device).expand_as(t) for b, t in zip(baselines, x))
        self.masks = tuple(m.expand_as(t) if m.shape[1] == 1 else m for m, t in zip(masks, x))
        self.flat_masks = tuple(m[0].reshape(-1) for m in self.masks)

    def inputs(self, rows: torch.Tensor) -> tuple:
        """The model's inputs for coalitions (rows x features, bool): per input, each voxel's row entry as a 0/1
        weight (index_select) and torch.lerp(baseline, x, weight), which returns x itself at weight 1 and the
        baseline itself at 0 (its formula switches ends at 0.5) — the same tensors as where(present, x, baseline)
        with finite inputs, 7x faster than a where over boolean advanced indexing (4 x 32 x 32 x 24, 16 rows)."""
        out = []
        for t, b, flat in zip(self.x, self.base, self.flat_masks):
            weight = rows.to(device=t.device, dtype=t.dtype).index_select(1, flat).view(len(rows), *t.shape[1:])
            out.append(torch.lerp(b, t, weight))
        return tuple(out)

    @torch.no_grad()
    def __call__(self, present: torch.Tensor) -> torch.Tensor:
        """f(.)[target] for each row of `present` (coalitions x features, bool), in near-equal batches of at most
        `batch` (33 rows in batches of 16 would leave a pass of one, the slowest per sample)."""
        chunks = max(1, -(-len(present) // self.batch))
        size = max(1, -(-len(present) // chunks))
        return torch.cat([self.forward(*self.inputs(present[lo:lo + size]))[:, self.target].float()
                          for lo in range(0, len(present), size)])

    def to_map(self, scores: torch.Tensor) -> tuple:
        """Per-feature scores written to the features' voxels: one tensor per input, 1 x input shape."""
        return tuple(scores[m] for m in self.masks)


def _per_case(inputs, target, baselines, feature_mask):
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
    baselines = baselines if isinstance(baselines, tuple) else (baselines,) * len(inputs)
    targets = torch.as_tensor(target).reshape(-1).tolist()
    for i in range(len(inputs[0])):
        sel = i if len(masks[0]) > 1 else 0
        yield (i, tuple(t[i:i + 1] for t in inputs),
               tuple(b[i:i + 1] if torch.is_tensor(b) and b.dim() and len(b) > 1 else b for b in baselines),
               tuple(m[sel:sel + 1] for m in masks), int(targets[i if len(targets) > 1 else 0]))


class _OnForward:
    """A method evaluated through a forward function (the model, BatchNorm folded and maybe compiled)."""

    def __init__(self, forward_func):
        self.forward = forward_func

    @property
    def implementation(self) -> str:  # read when asked: a compiled model may fall back to uncompiled mid-job
        return "clinxai batched" + describe(self.forward)


class _Method(_OnForward):
    """FeatureAblation and ShapleyValueSampling: each case's coalitions of its features, batched, or by incremental
    inference through the model's layer chain (`use_chain`) where a case's feature boxes are small."""

    boxed: BoxedChain | None = None
    rows: int = 4
    ran: set

    def __init__(self, forward_func):
        super().__init__(forward_func)
        self.ran = set()

    def use_chain(self, chain, head, rows: int = 4) -> None:
        """The model as a chain of convolution, pooling and element-wise layers, then a head (its family's);
        `rows`: features (FeatureAblation) or orders (ShapleyValueSampling) per batch, whose box is the largest
        extent of theirs, so that on a CPU small batches win (heatmaps.batching.incremental_features)."""
        self.boxed, self.rows = BoxedChain(chain, head), max(1, int(rows))

    @property
    def implementation(self) -> str:
        batched = "clinxai batched" + describe(self.forward)
        if "incremental" not in self.ran:
            return batched
        return f"clinxai incremental ({self.rows} per batch)" + (" and " + batched if "batched" in self.ran else "")

    def _boxes(self, c: Coalitions, mixed: bool):
        """The features' boxes (feature_boxes) if this case's coalitions run through the chain, else None. A batch's
        box is the largest extent of its members': FeatureAblation's batches hold boxes of similar size (the 75th
        percentile stands for them), ShapleyValueSampling's (`mixed`) random features of the orders (the median
        over 64 groups drawn here of their largest extent, from a generator of its own: captum's draws untouched)."""
        if self.boxed is None or len(c.x) != 1:
            self.ran.add("batched")
            return None
        starts, ends = feature_boxes(c.masks[0], c.n)
        extents = (ends - starts)[(ends > starts).all(axis=1)]
        if len(extents) and mixed:
            groups = np.random.default_rng(0).integers(0, len(extents), size=(64, min(self.rows, len(extents))))
            typical = np.median(extents[groups].max(axis=1), axis=0)
        elif len(extents):
            typical = np.percentile(extents, 75, axis=0)
        if not len(extents) or self.boxed.relative_cost(c.x[0].shape[1:], typical) >= PAYS_BELOW:
            self.ran.add("batched")
            return None
        self.ran.add("incremental")
        return starts, ends

    def attribute(self, inputs, target=None, baselines=0.0, feature_mask=None, perturbations_per_eval=1, **kw):
        as_tuple = isinstance(inputs, tuple)
        x = inputs if as_tuple else (inputs,)
        masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
        n = int(max(int(m.max()) for m in masks)) + 1  # features of the whole call, as captum counts them
        draws = self._draw(n, **kw)  # one set of random draws for every case of the call, as captum
        out = tuple(torch.zeros_like(t, dtype=torch.float32) for t in x)
        for i, xi, bi, mi, ti in _per_case(inputs, target, baselines, feature_mask):
            c = Coalitions(self.forward, xi, bi, mi, ti, perturbations_per_eval, n)
            for o, a in zip(out, self._one(c, draws)):
                o[i] = a[0]
        return out if as_tuple else out[0]

    def _draw(self, n: int, **kw):
        return None


class FeatureAblation(_Method):
    """captum.attr.FeatureAblation(forward_func).attribute with a feature mask, batched."""

    def _one(self, c: Coalitions, draws):
        ids = torch.unique(torch.cat([m.reshape(-1) for m in c.masks])).cpu()  # as captum, no pass for absent ids
        boxes = self._boxes(c, mixed=False)
        if boxes is not None:
            return self._incremental(c, ids, *boxes)
        present = torch.ones(len(ids) + 1, c.n, dtype=torch.bool)
        present[torch.arange(1, len(ids) + 1), ids] = False  # row 0: the case itself; row 1 + k: without ids[k]
        f = c(present)
        scores = torch.zeros(c.n, device=f.device)
        scores[ids.to(f.device)] = f[0] - f[1:]
        return c.to_map(scores)

    @torch.inference_mode()
    def _incremental(self, c: Coalitions, ids, starts, ends):
        """Each feature removed from the case in turn, recomputed inside its box from the case's activations;
        features of similar box size share a batch (its box is the largest extent per axis)."""
        x, base, mask = c.x[0], c.base[0], c.masks[0]
        state = self.boxed.state(x)
        f_x = self.boxed.reference(state)[0, c.target].float()
        scores = torch.zeros(c.n, device=x.device)
        order = ids[np.argsort((ends - starts)[ids.numpy()].prod(axis=1), kind="stable")]
        for lo in range(0, len(order), self.rows):
            chunk = order[lo:lo + self.rows]
            at, size = batch_box(starts[chunk.numpy()], ends[chunk.numpy()], x.shape[2:])
            box_x, box_base, box_mask = (gather_rows(t[:1], at, size) for t in (x, base, mask))
            which = chunk.to(box_mask.device).view(-1, *[1] * (x.dim() - 1))
            patch = torch.where(box_mask == which, box_base, box_x)
            scores[chunk.to(x.device)] = f_x - self.boxed.logits(state, patch, at)[:, c.target].float()
        return c.to_map(scores)


class ShapleyValueSampling(_Method):
    """captum.attr.ShapleyValueSampling(forward_func).attribute with a feature mask, batched over orders."""

    def _draw(self, n: int, n_samples: int = 25):
        return [torch.randperm(n) for _ in range(int(n_samples))]  # captum's draws, in its order

    def _one(self, c: Coalitions, orders):
        boxes = self._boxes(c, mixed=True)
        if boxes is not None:
            return self._incremental(c, orders, *boxes)
        first = torch.ones(c.n, c.n, dtype=torch.bool).tril()  # step s: the first s + 1 features of an order
        f = c(torch.cat([torch.zeros(1, c.n, dtype=torch.bool)]  # row 0: nothing present
                        + [first[:, torch.argsort(order)] for order in orders]))
        runs = torch.cat([f[:1].expand(len(orders), 1), f[1:].reshape(len(orders), c.n)], dim=1)
        gains = runs.diff(dim=1)  # order k, step s: the gain of adding feature orders[k][s]
        scores = torch.zeros(c.n, device=f.device).index_add_(0, torch.cat(orders).to(f.device), gains.reshape(-1))
        return c.to_map(scores / len(orders))

    @torch.inference_mode()
    def _incremental(self, c: Coalitions, orders, starts, ends):
        """Per order, from the all-baseline input, each step adds one feature to the previous step's input and is
        recomputed inside that feature's box from the previous step's activations, which each order (row) keeps;
        orders run side by side in groups whose state fits STATE_BYTES."""
        x, base, mask = c.x[0], c.base[0], c.masks[0]
        empty = torch.from_numpy((ends <= starts).any(axis=1))  # a feature this case lacks adds nothing
        start = self.boxed.state(base.expand_as(x).contiguous())
        f_none = self.boxed.reference(start)[0, c.target].float()
        rows = max(1, min(len(orders), self.rows, STATE_BYTES // max(1, start.nbytes)))
        scores = torch.zeros(c.n, device=x.device)
        for lo in range(0, len(orders), rows):
            group = torch.stack(orders[lo:lo + rows])
            state, prev = start.rows(len(group)), f_none.expand(len(group))
            for step in group.T:
                live = ~empty[step]
                if not live.any():
                    continue
                at, size = batch_box(starts[step.numpy()], ends[step.numpy()], x.shape[2:])
                which = step.to(x.device).view(-1, *[1] * (x.dim() - 1))
                patch = torch.where(gather_rows(mask[:1], at, size) == which, gather_rows(x, at, size),
                                    gather_rows(state.x, at, size))
                f = self.boxed.logits(state, patch, at, write=True)[:, c.target].float()
                live = live.to(f.device)
                scores.index_add_(0, step.to(f.device), torch.where(live, f - prev, 0.0))
                prev = torch.where(live, f, prev)
        return c.to_map(scores / len(orders))


def permutation_draws(masks: tuple, n: int, per_eval: int) -> tuple[list, dict]:
    """captum's FeaturePermutation draws: its feature order (ids in order of the inputs, each input's sorted) and,
    per chunk of `per_eval` features, per input holding one of them, per feature of the chunk, one
    torch.randperm(n) from the global generator, redrawn while it is the identity. -> (ids, {(id, input): perm})."""
    ids = list(dict.fromkeys(int(k) for m in masks for k in torch.unique(m)))
    holds = [set(torch.unique(m).tolist()) for m in masks]
    perms = {}
    for lo in range(0, len(ids), per_eval):
        chunk = ids[lo:lo + per_eval]
        for i, held in enumerate(holds):
            if held.isdisjoint(chunk):
                continue
            for k in chunk:
                perm = torch.randperm(n)
                while (perm == torch.arange(n)).all():
                    perm = torch.randperm(n)
                perms[k, i] = perm
    return ids, perms


class FeaturePermutation(_OnForward):
    """captum.attr.FeaturePermutation(forward_func).attribute with a feature mask, batched: score of feature k for
    case c = f(x)[c, t_c] - f(x with feature k's voxels taken from the cases in a random order)[c, t_c], written to
    the feature's voxels. captum's draws in its order for the same `perturbations_per_eval` (permutation_draws);
    the permuted copies of about `perturbations_per_eval` samples (copies x cases) per forward pass, the unpermuted
    cases in the first, each batch of copies built in one tensor operation per input."""

    @torch.no_grad()
    def attribute(self, inputs, target=None, feature_mask=None, perturbations_per_eval=1, **kw):
        as_tuple = isinstance(inputs, tuple)
        x = inputs if as_tuple else (inputs,)
        masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
        n = len(x[0])
        out = tuple(torch.zeros_like(t, dtype=torch.float32) for t in x)
        if n < 2:  # captum skips every feature of a batch of one (nothing to permute with)
            return out if as_tuple else out[0]
        ids, perms = permutation_draws(masks, n, max(1, int(perturbations_per_eval)))
        rows = torch.arange(n, device=x[0].device)
        t = torch.as_tensor(target if target is not None else 0, device=x[0].device).reshape(-1).expand(n)
        copies = max(1, int(perturbations_per_eval) // n)
        # the unpermuted cases ride in the first pass, in place of one copy: a pass of only n cases costs several
        # times more per sample on a CPU (measured: 10-11 ms at batch 1 against 2.3-2.4 ms at 8-32, glioma demo)
        first = max(1, copies - 1)
        chunks = [ids[:first]] + [ids[lo:lo + copies] for lo in range(first, len(ids), copies)]
        scores, f0 = None, None
        for j, chunk in enumerate(chunks):
            batch = tuple(torch.cat(([xi] if j == 0 else [])
                                    + [torch.where(m == k, xi[perms[k, i]], xi) if (k, i) in perms else xi
                                       for k in chunk])
                          for i, (xi, m) in enumerate(zip(x, masks)))
            f = self.forward(*batch).reshape(len(chunk) + (j == 0), n, -1)[:, rows, t].float()
            if j == 0:
                f0, f = f[0], f[1:]
                scores = torch.zeros(max(ids) + 1, n, device=f0.device)
            scores[torch.tensor(chunk, device=f.device)] = f0 - f
        for o, m, xi in zip(out, masks, x):
            idx = m.expand(n, *xi.shape[1:]).reshape(n, -1)
            o.copy_(scores.T.gather(1, idx.to(scores.device)).reshape(xi.shape))
        return out if as_tuple else out[0]
