"""Nothing trained is lost by a click, a link or a reload (www/keep.js; issue 15, item 8), on the
CPU backend (no adapter) with a small model.

1. undo: Reset (the button) offers Undo, which puts back the model bit for bit (parameters read
   with App.params()) and its step; a width change through its control and a link that changes
   the width (a new hash, as Back/Forward would) retrain and offer Undo, which brings back the
   width and the model (its step) of the page's last good snapshot (App.last_good_model).
   Leaving with a trained, unsaved model asks (a cancelable beforeunload is cancelled); after
   Save model it does not.
2. reload: the trained model reaches the browser's storage (IndexedDB) on its own; a reload offers
   it back ("Restore your model from <time>?"), and Restore brings back its step and settings.

Run by `tests/e2e/run.sh test_keep.py [undo reload]`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import log, run_tests, session  # noqa: E402
from test_page import URL, wait_ready  # noqa: E402

# steps=0: training without end. This model trains a whole 2000-step run in under a second on the
# CPU, so a run's end could fall between a pause and the next `trained` (CI: paused at step 1973,
# the run then ended at 2000 and the 50 more steps the test waits for never came).
SMALL = "dataset=moons&width=16&depth=2&batch=64&particles=300&nfe=8&steps=0"
KEEP = "return window.flowmatch.keep"


def params(d):
    return d.js_async("window.flowmatch.app.params().then((p) => done(Array.from(p)), (e) => done(String(e)))")


def toast(d, word, what):
    return d.wait_for(f"const t = window.flowmatch.keep.toast; return t && t.text.includes({word!r}) && t", 20, what)


def press(d, label):
    d.js("const b = [...document.querySelectorAll('#keep-toast button')].find((b) => b.textContent === arguments[0]); b.click();", label)


def trained(d, steps=150):
    """Trains until the step passes `steps` and a snapshot of a trained model exists."""
    d.js("window.flowmatch.app.play()")
    d.wait_for(f"const s = window.flowmatch, m = s.app.last_good_model(); return s.step >= {steps} && m && m.step >= 100", 60,
               f"{steps} steps and a snapshot", progress="window.flowmatch.step")


def leave_asks(d):
    return d.js("const e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented;")


def test_undo():
    with session([]) as d:
        d.get(URL + "?cpu=1&case=undo#" + SMALL)
        wait_ready(d)
        trained(d)
        d.js("window.flowmatch.app.pause()")
        step = d.js("return window.flowmatch.app.state().step")
        before = params(d)
        d.js("document.getElementById('reset').click()")
        toast(d, "Training restarted", "an Undo after Reset")
        assert d.js("return window.flowmatch.app.state().step") == 0
        assert params(d) != before, "Reset did not change the weights"
        press(d, "Undo")
        d.wait_for(f"return window.flowmatch.app.state().step === {step}", 10, "Undo to bring the step back")
        assert params(d) == before, "Undo did not put back the same weights"
        log(f"Reset at step {step}, Undo: the same step and the same {len(before)} parameters")

        # A model-shaping change through its control, then through the link: each retrains at
        # once and offers Undo back to the latest snapshot, settings included.
        change = "const e = document.getElementById('f-' + arguments[0]); e.value = arguments[1]; e.dispatchEvent(new Event('change'));"
        for how in ("control", "link"):
            trained(d, step + 50)
            d.js("window.flowmatch.app.pause()")
            snap = d.js("return window.flowmatch.app.last_good_model().step")
            if how == "control":
                d.js(change, "width", "24")
            else:
                d.js("location.hash = arguments[0]", "#" + SMALL.replace("width=16", "width=24"))
            t = toast(d, "restarted training", f"an Undo after a width change through the {how}")
            assert d.js("return window.flowmatch.app.get('width')") == "24"
            press(d, "Undo")
            d.wait_for("return window.flowmatch.app.get('width') === '16' && location.hash.includes('width=16')", 10, "Undo to bring width 16 back")
            got = d.js("return window.flowmatch.app.state().step")
            assert got == snap, f"Undo after the {how} change went back to step {got}, the last snapshot was at {snap}"
            log(f"width 24 through the {how} ({t['text'][:40]}...), Undo: width 16 at step {got}")
            step = got

        # Leaving: asks while the trained model is unsaved, not after Save model.
        d.js("window.flowmatch.app.pause()")
        assert leave_asks(d), "leaving with a trained, unsaved model does not ask"
        d.js("document.getElementById('save-model').click()")
        d.wait_for("const m = window.flowmatch.savedModel; return m && m.step === window.flowmatch.app.state().step", 20, "the model to be saved")
        assert not leave_asks(d), "leaving asks although the model was just saved"
        log("leaving asks with an unsaved trained model, not after Save model")


def test_reload():
    with session([]) as d:
        d.get(URL + "?cpu=1&case=reload#" + SMALL)
        wait_ready(d)
        trained(d)
        d.wait_for("const k = window.flowmatch.keep; return k.storedStep >= 100 && k.storedStep", 60,
                   "the model to reach the browser's storage on its own", progress="window.flowmatch.keep.storedStep")
        # Paused: the page's newest snapshot is what leaving stores (pagehide), if not stored yet.
        d.js("window.flowmatch.app.pause()")
        d.frames(5)  # (a snapshot read in flight lands)
        stored = d.js("return window.flowmatch.app.last_good_model().step")
        d.get(URL + "?cpu=1&case=reloaded#" + SMALL.replace("width=16", "width=24"))
        wait_ready(d)
        offer = toast(d, "Restore your model from", "the stored model to be offered back")
        assert d.js(KEEP + ".offer.step") == stored, f"the offer is not the stored model: {offer}"
        press(d, "Restore")
        d.wait_for(f"return window.flowmatch.app.state().step === {stored} && window.flowmatch.app.get('width') === '16'", 10,
                   "Restore to bring the stored model back")
        assert "width=16" in d.js("return location.hash")
        log(f"stored at step {stored}; after a reload: \"{offer['text']}\"; Restore: step {stored}, width 16")


TESTS = {"undo": test_undo, "reload": test_reload}

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv[1:], "e2e keep"))
