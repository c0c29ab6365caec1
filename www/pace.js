// www/pace.js — the animation-frame rate of the page and the widget on a software WebGPU adapter.
//
// There (SwiftShader, lavapipe) the adapter is the CPU the page runs on: every frame of the
// page's own (DOM updates, the compositor's work) takes time from the training it draws, and
// frames reach the canvas only a few times a second anyway (src/web/present.rs). So the loop does
// its work at most SOFTWARE_FPS times a second there, and at once after an input. Measured with
// bench/run-page.sh (docs/BENCHMARKS.md): input → next frame 1.4 s → 17 ms, the page's training
// rate 0.20 → 0.45 of the bench page's in one run each at the same load.

export const SOFTWARE_FPS = 15;

/** Whether the frame at `now` is skipped: a software WebGPU adapter (`state`: App.state()'s
 *  `software` and `backend`), no input waiting, and less than a frame period since `last`. */
export function skipFrame(state, now, last, inputWaiting = false) {
  return Boolean(state && state.software && state.backend === 'webgpu') && !inputWaiting && last !== null && now - last < 1000 / SOFTWARE_FPS - 2;
}
