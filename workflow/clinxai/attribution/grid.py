"""A method's hyperparameter-dependence grid (issue 19) as concrete settings: the registry's `Vary` entries applied
one at a time to the parameters in use (the reference), so each setting differs from the reference in one
hyperparameter. A value equal to the one in use is left out (a factor of a count of 1 can round back to 1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .registry import METHODS, method_params

REFERENCE = "reference"


@dataclass(frozen=True)
class Setting:
    name: str                                        # "reference" or "<param>=<value>"
    overrides: dict = field(default_factory=dict)    # heatmap parameters (and `layer`) for clinxai.attribution.explain
    supervoxels: dict | None = None                  # a supervoxel config other than the task's, or None


def _scaled(value, factor: float, integer: bool):
    v = value * factor
    return max(1, int(round(v))) if integer else float(v)


def _window(params: dict, factor: float, input_shape) -> dict:
    """Scale every window and stride entry but the first (channel or slice), at most the input's extent."""
    out = {}
    for key in ("sliding_window_shapes", "strides"):
        entries = list(params[key])
        scaled = [entries[0]] + [_scaled(e, factor, True) for e in entries[1:]]
        if input_shape is not None:
            scaled = [min(e, s) for e, s in zip(scaled, input_shape)]
        out[key] = scaled
    return out


def grid_settings(method: str, layout: str, overrides: dict | None, supervoxels: dict,
                  input_shape=None, layers=("last", "previous")) -> list[Setting]:
    """The reference setting first, then one per (hyperparameter, value) of the method's grid. `overrides`: the
    task's configured parameters of the method; `supervoxels`: the task's supervoxel config; `input_shape`: one
    modality's shape (channel or slice axis first) to keep windows inside it; `layers`: the GradCAM layers the model
    names (a supplied model may name no previous one)."""
    params = method_params(method, layout, overrides)
    out = [Setting(REFERENCE, dict(overrides or {}))]
    for vary in METHODS[method].grid:
        for value in vary.values:
            over, sv = dict(overrides or {}), None
            if vary.param == "window":
                new = _window(params, value, input_shape)
                if list(new["sliding_window_shapes"]) == list(params["sliding_window_shapes"]):
                    continue
                over.update(new)
                label = "x".join(map(str, new["sliding_window_shapes"][1:]))
            elif vary.param == "n_segments":
                n = max(2, _scaled(supervoxels["n_segments"], value, True))
                if n == supervoxels["n_segments"]:
                    continue
                sv, label = {**supervoxels, "n_segments": n}, n
            elif vary.param == "layer":
                if value not in layers:
                    continue
                over["layer"], label = value, value
            else:
                ref = params[vary.param]
                new = _scaled(ref, value, isinstance(ref, int)) if vary.relative else value
                if new == ref:
                    continue
                over[vary.param], label = new, new
            out.append(Setting(f"{vary.param}={label}", over, sv))
    return out
