"""Progress lines of long jobs (issue 22) and the filter of captum's expected warnings."""
import logging
import warnings

from clinxai.logs import filter_known_warnings
from clinxai.progress import Progress, _clock


def test_progress_logs_first_last_and_when_due_with_an_eta(caplog):
    now = [0.0]
    log = logging.getLogger("clinxai.test")
    with caplog.at_level(logging.INFO, logger="clinxai.test"):
        p = Progress(5, "glioma seed 10 Occlusion", log, every=30, bar=False, clock=lambda: now[0])
        for t in (2.0, 10.0, 20.0, 40.0, 45.0):  # a case done at each of these times
            now[0] = t
            p.update()
    lines = [r.getMessage() for r in caplog.records]
    # the first case, then the first case 30 s after a logged one (t = 40), then the last
    assert lines == ["glioma seed 10 Occlusion: 1/5 cases, elapsed 0:02, ETA 0:08",
                     "glioma seed 10 Occlusion: 4/5 cases, elapsed 0:40, ETA 0:10",
                     "glioma seed 10 Occlusion: 5/5 cases, elapsed 0:45"]
    assert _clock(3725) == "1:02:05" and _clock(65) == "1:05"


def test_only_captums_expected_warnings_are_filtered():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filter_known_warnings()
        warnings.warn("Input Tensor 0 did not already require gradients, required_grads has been set automatically.",
                      UserWarning, stacklevel=1)
        warnings.warn("Setting backward hooks on ReLU activations.The hooks will be removed", UserWarning, stacklevel=1)
        warnings.warn("something a user should see", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something a user should see"]
