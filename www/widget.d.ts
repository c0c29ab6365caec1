// Type declarations for www/widget.js: the <flow-matching-demo> custom element.
// (scripts/build-wasm.sh copies this file next to widget.js in the npm package; tests/e2e/
// test_widget.py checks every member and attribute declared here against the running element.)

/** State of the figure's model, as the element's `state` getter returns it. */
export interface FlowMatchingState {
  /** Training steps taken. */
  step: number;
  /** Mean of the last ten losses read back (NaN before the first). */
  lossRecent: number;
  stepsPerSec: number;
  /** "webgpu" or "cpu". */
  backend: string;
  training: boolean;
  /** True on the CPU fallback or a software adapter (smaller defaults). */
  software: boolean;
  [key: string]: unknown;
}

/** `detail` of the `ready` event. */
export interface FlowMatchingReadyDetail {
  backend: string;
  adapter: string;
}

/** `detail` of the `progress` event (fired as training advances, a few times per second). */
export interface FlowMatchingProgressDetail {
  step: number;
  loss: number;
}

/** `detail` of the `error` event: a rejected attribute (named) or a failure of the figure. */
export interface FlowMatchingErrorDetail {
  message: string;
  attribute?: string;
}

/** Configuration attributes (the demo page's hash fields; an invalid one falls back to its
 *  default with a message naming it): dataset source width depth activation lr schedule batch seed
 *  sigma-min path coupling weight-decay solver nfe tol particles steps, t-sampling t-mean t-std t-u
 *  objective conditional label-dropout fm-class (the sampling class: `class` is HTML's) guidance sampler
 *  noise (those need WebGPU), points (the dataset's training points), reflow-pairs reflow-steps (the
 *  page's Reflow button; the widget has none), or a whole hash in `config`. */
export type FlowMatchingConfigAttribute =
  | 'dataset' | 'source' | 'width' | 'depth' | 'activation' | 'lr' | 'schedule' | 'batch' | 'seed' | 'sigma-min'
  | 'path' | 'coupling' | 'weight-decay' | 'solver' | 'nfe' | 'tol' | 'particles' | 'steps'
  | 't-sampling' | 't-mean' | 't-std' | 't-u' | 'objective' | 'conditional' | 'label-dropout' | 'fm-class'
  | 'guidance' | 'sampler' | 'noise' | 'points' | 'reflow-pairs' | 'reflow-steps';

/** Widget attributes: `config` (a demo-page hash), `preset` (a figure of the literature by name:
 *  cfm-moons, icfm-8gaussians-moons, otcfm-8gaussians-moons, path-linear, path-cosine, path-vp —
 *  `presets_json()` lists them with their papers; an unknown name gets a message listing them), `controls` none|minimal|full, `autoplay`
 *  on|off, `train-steps` N (= `steps`; 0: never stop), `size` "W" or "WxH" CSS px, `aspect`
 *  "4/3", `theme` auto|light|dark, `backend` webgpu|cpu|auto, the `loss` chart and the layers
 *  (`layer_specs()`: `trajectories` `field`/`arrows` `exact` `exactflow` `target` `heatmap` `trails`) = on|off. */
export type FlowMatchingWidgetAttribute =
  | 'config' | 'preset' | 'controls' | 'autoplay' | 'train-steps' | 'size' | 'aspect' | 'theme' | 'backend'
  | 'trajectories' | 'field' | 'arrows' | 'exact' | 'exactflow' | 'target' | 'heatmap' | 'trails' | 'loss';

export declare class FlowMatchingDemo extends HTMLElement {
  static readonly observedAttributes: Array<FlowMatchingConfigAttribute | FlowMatchingWidgetAttribute>;
  /** Milliseconds a figure stays off screen (or in a hidden tab) before it releases its GPU
   *  buffers and pipelines (default 10000); its model, loss curve and training state are kept and
   *  it is rebuilt from them when it comes back. While released, `state` is the last state with
   *  `released: true`. */
  static releaseAfterMs: number;
  /** Trains (again); after a run of `train-steps` steps has ended, another run of as many (the learning-rate schedule starts over). */
  play(): void;
  pause(): void;
  /** Restarts training from the seed's initial weights (with the `train-steps` limit again). */
  reset(): void;
  /** Training steps taken (0 before the figure starts). */
  readonly step: number;
  /** Mean of the last ten losses (NaN before the first). */
  readonly loss: number;
  /** True once the model exists (after the `ready` event). */
  readonly ready: boolean;
  readonly state: FlowMatchingState | null;
  /** The attributes that were rejected, with their messages. */
  readonly messages: Array<{ attribute: string; message: string }>;
  /** The configuration in use, as a demo-page hash (null before the figure starts). */
  readonly config: string | null;
  /** The defaults the figure falls back to for its engine (a GPU, a software adapter or the
   *  CPU), as a demo-page hash (null before the figure starts). */
  readonly defaults: string | null;
  /** A PNG of the current view. */
  toPNG(): Promise<Blob>;
  /** The particles at t = 1 as CSV text with a header `x,y`. */
  samplesCSV(): Promise<string>;
  /** The model (settings, weights, training state) as a file: `format` is one of
   *  `model_formats()` ("flowmatch", the default, or "safetensors", readable by PyTorch/numpy). */
  saveModel(format?: 'flowmatch' | 'safetensors'): Promise<Blob>;
  /** A WebM recording of the canvas for `seconds` (default 4, at most 30). */
  record(seconds?: number): Promise<Blob>;

  addEventListener(type: 'ready', listener: (ev: CustomEvent<FlowMatchingReadyDetail>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: 'progress', listener: (ev: CustomEvent<FlowMatchingProgressDetail>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: 'error', listener: (ev: CustomEvent<FlowMatchingErrorDetail>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'flow-matching-demo': FlowMatchingDemo;
  }
}
