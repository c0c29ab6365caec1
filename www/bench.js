// Browser benchmark driver for www/bench.html (see the comment there).
//
// One page load measures one config on up to two sides, each against the baselines in the same
// page, one after the other:
//   gpu: flowmatch's wgpu trainer (src/bench.rs through runBench) vs jax-js and TensorFlow.js on
//        their WebGPU backends;
//   cpu: flowmatch's CPU backend (the fast trainer the page uses, src/cpu/fast/, through
//        runCpuBench) vs jax-js and TensorFlow.js on their wasm backends.
// Every baseline builds the same network (3 -> depth x [width, SiLU] -> 2, PyTorch-style uniform
// init), the same CFM batch inside the timed step (x0 ~ N(0, I), t ~ U(0, 1), x1 drawn from a
// moons pool; x_t = (1-t)x0 + t·x1, u = x1 - x0, loss mean_b ‖v - u‖²) and Adam(lr 1e-3), and times
// it the same way: warm-up, then N steps with no readback, ended by one awaited read. jax-js runs
// `jit` over the whole step (batch, value-and-grad, Adam). The baselines run the number of steps
// flowmatch's side ran; on the cpu side in `cpu_rounds` (default 3) rounds that alternate between
// them (and the scalar reference with reference=1), so a change in the machine's load hits all. FLOPs per step use the same
// formula: 6·batch·Σ in·out.
const q = new URLSearchParams(location.search);
// pkg=DIR loads another build of the package (e.g. one passed through wasm-opt) from ../DIR/.
const pkgDir = (q.get('pkg') || 'pkg').replace(/[^A-Za-z0-9_-]/g, '');
let runBench;
let runCpuBench;

const CONFIGS = { S: [64, 3, 256], M: [256, 4, 1024], L: [512, 4, 4096] };
const MODULES = '../bench/node_modules';
const config = (q.get('config') || 'S').toUpperCase();
const steps = Number(q.get('steps') || 0);
const cpuSteps = Number(q.get('cpu_steps') || 0);
const particles = Number(q.get('particles') || 0);
const kernels = q.get('kernels') || ''; // software | tiled | '' (the adapter's choice)
// Training steps per queue submit on the GPU side (0: the trainer's most; the demo page submits a few).
const perSubmit = Number(q.get('per_submit') || 0);
const baselines = (q.get('baselines') || q.get('baseline') || '').split(',').filter(Boolean); // tfjs, jax
const sides = (q.get('sides') || 'gpu').split(',').filter(Boolean); // gpu, cpu
// The CPU side's batch coupling (independent | ot: the OT-CFM batch, flowmatch's sides only).
const coupling = q.get('coupling') || 'independent';
const progress = (s) => { document.getElementById('progress').textContent = s; };
const r3 = (v) => Math.round(v * 1000) / 1000;
const ratio = (a, b) => (a && b ? Math.round((a.steps_per_s / b.steps_per_s) * 100) / 100 : null);

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}: run bench/run-browser.sh (npm install in bench/) first`));
    document.head.appendChild(s);
  });
}

function moonsPool(n, seed) {
  // Two interleaved half circles with noise 0.05 (the exact target does not change step time).
  let s = seed >>> 0;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 0.5) / 4294967296;
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const th = Math.PI * rand();
    const upper = i % 2 === 0;
    const g = () => Math.sqrt(-2 * Math.log(rand())) * Math.cos(2 * Math.PI * rand());
    out[2 * i] = (upper ? Math.cos(th) : 1 - Math.cos(th)) + 0.05 * g();
    out[2 * i + 1] = (upper ? Math.sin(th) : 0.5 - Math.sin(th)) + 0.05 * g();
  }
  return out;
}
const POOL = 100000;

function layerDims(name) {
  const [width, depth, batch] = CONFIGS[name];
  const dims = [3, ...Array(depth).fill(width), 2];
  const macs = dims.slice(1).reduce((m, d, i) => m + dims[i] * d, 0);
  return { width, depth, batch, dims, macs };
}

/// The fields every baseline reports.
function report(impl, backend, name, nSteps, seconds, loss, adapter, extra) {
  const { width, depth, batch, macs } = layerDims(name);
  const stepsPerS = nSteps / seconds;
  return {
    impl, backend, config: name, width, depth, batch, steps: nSteps, train_seconds: r3(seconds),
    steps_per_s: r3(stepsPerS), step_ms: r3(1000 / stepsPerS), flop_per_step: 6 * batch * macs,
    gflops: r3((6 * batch * macs * stepsPerS) / 1e9), final_loss: r3(loss), ...adapter, ...extra,
  };
}

/// A GPUDevice's adapter as the report names it: description (or vendor/architecture), type.
function gpuAdapter(device) {
  const i = (device && device.adapterInfo) || {};
  const name = i.description || [i.vendor, i.architecture, i.device].filter(Boolean).join(' ') || '(no name)';
  return { adapter: name, device_type: i.isFallbackAdapter ? 'cpu (fallback adapter)' : 'gpu' };
}

function cpuAdapter() {
  return { adapter: `${navigator.userAgent}; ${navigator.hardwareConcurrency} hardware threads`, device_type: 'cpu' };
}

// ---------------------------------------------------------------------------------------------
// Each baseline is built once per page and then timed in rounds: `time(n)` runs n steps after
// the previous ones and resolves to the seconds they took (ended by one awaited read), so rounds
// of flowmatch and the baselines can alternate on a loaded machine.

// TensorFlow.js (4.22.0): `backend` is 'webgpu' or 'wasm'.

async function loadTfjs(backend) {
  if (!window.tf) await loadScript(`${MODULES}/@tensorflow/tfjs/dist/tf.min.js`);
  if (backend === 'webgpu' && !window.tf.findBackend('webgpu')) {
    await loadScript(`${MODULES}/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js`);
  }
  if (backend === 'wasm' && !window.tf.findBackend('wasm')) {
    await loadScript(`${MODULES}/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js`);
    window.tf.wasm.setWasmPaths(`${MODULES}/@tensorflow/tfjs-backend-wasm/dist/`);
  }
  const tf = window.tf;
  if (!(await tf.setBackend(backend))) throw new Error(`TensorFlow.js could not start its ${backend} backend`);
  await tf.ready();
  return tf;
}

async function makeTfjs(backend, name) {
  const tf = await loadTfjs(backend);
  const { dims, batch } = layerDims(name);
  const layers = [];
  for (let l = 0; l + 1 < dims.length; l++) {
    const bound = 1 / Math.sqrt(dims[l]);
    layers.push({
      w: tf.variable(tf.randomUniform([dims[l], dims[l + 1]], -bound, bound, 'float32', 1 + l)),
      b: tf.variable(tf.randomUniform([dims[l + 1]], -bound, bound, 'float32', 101 + l)),
    });
  }
  const net = (x) => {
    let h = x;
    layers.forEach((L, i) => {
      h = tf.add(tf.matMul(h, L.w), L.b);
      if (i + 1 < layers.length) h = tf.mul(h, tf.sigmoid(h)); // SiLU
    });
    return h;
  };
  const pool = tf.tensor2d(moonsPool(POOL, 7), [POOL, 2]);
  const opt = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
  const step = (returnCost) => tf.tidy(() => opt.minimize(() => {
    const x0 = tf.randomNormal([batch, 2]);
    const t = tf.randomUniform([batch, 1]);
    const x1 = tf.gather(pool, tf.randomUniformInt([batch], 0, POOL));
    const xt = tf.add(tf.mul(tf.sub(1, t), x0), tf.mul(t, x1));
    const u = tf.sub(x1, x0);
    const v = net(tf.concat([xt, t], 1));
    return tf.mean(tf.sum(tf.square(tf.sub(v, u)), 1));
  }, returnCost));
  await warmUp(async (n) => { for (let i = 0; i < n; i++) step(false); await layers[0].w.data(); });
  let loss = NaN;
  const extra = { tfjs: tf.version.tfjs };
  if (backend === 'wasm') {
    const flag = (f) => { try { return tf.env().getBool(f); } catch (e) { return null; } };
    Object.assign(extra, { wasm_simd: flag('WASM_HAS_SIMD_SUPPORT'), wasm_multithread: flag('WASM_HAS_MULTITHREAD_SUPPORT') });
  }
  return {
    adapter: backend === 'webgpu' ? gpuAdapter(tf.backend().device) : cpuAdapter(),
    extra,
    async time(n) {
      const t0 = performance.now();
      for (let i = 0; i + 1 < n; i++) step(false);
      const cost = step(true);
      loss = (await cost.data())[0];
      cost.dispose();
      return (performance.now() - t0) / 1000;
    },
    loss: () => loss,
    /// Euler through the same network, no readback until the end (like src/bench.rs).
    async sample(nParticles, odeSteps) {
      let x = tf.randomNormal([nParticles, 2]);
      const h = 1 / odeSteps;
      const euler = (xc, k) => tf.tidy(() => tf.add(xc, tf.mul(h, net(tf.concat([xc, tf.fill([nParticles, 1], k * h)], 1)))));
      const warm = euler(x, 0); await warm.data(); warm.dispose();
      const s0 = performance.now();
      for (let k = 0; k < odeSteps; k++) { const nx = euler(x, k); x.dispose(); x = nx; }
      await x.data();
      const sampleSeconds = (performance.now() - s0) / 1000;
      x.dispose();
      return { particles: nParticles, ode_solver: 'euler', ode_steps: odeSteps, particle_steps_per_s: r3((nParticles * odeSteps) / sampleSeconds) };
    },
    dispose() {
      layers.forEach((L) => { L.w.dispose(); L.b.dispose(); });
      pool.dispose();
      opt.dispose();
      extra.tensors_alive = tf.memory().numTensors;
    },
  };
}

// jax-js (0.1.25): `device` is 'webgpu' or 'wasm'. One jit-compiled function is the whole step:
// batch from the carried PRNG key, value-and-grad of the loss, Adam with bias correction from
// carried β powers; it returns the next state, so nothing crosses to the host between steps.
// Ownership: every jax-js function consumes its array arguments, so arrays used twice are `.ref`.
// jax_sync=each (default) awaits every step's loss: jax-js evaluates lazily, and a chain of
// unread steps ran slower than reading each one (loaded 2-core box, S: wasm 27.5 vs 15.5 ms/step,
// SwiftShader WebGPU 140 vs 83-101 ms/step), so each library runs in its faster form;
// jax_sync=end chains the steps like the others.
const jaxSync = q.get('jax_sync') || 'each';

async function makeJax(device, name) {
  const jax = await import(`${MODULES}/@jax-js/jax/dist/index.js`);
  const { numpy: np, random, nn, tree, jit, valueAndGrad } = jax;
  const available = await jax.init(device);
  if (!available.includes(device)) throw new Error(`jax-js could not start its ${device} backend (has: ${available.join(', ')})`);
  jax.defaultDevice(device);
  const { dims, batch } = layerDims(name);
  const [lr, b1, b2, eps] = [1e-3, 0.9, 0.999, 1e-8];
  const params = dims.slice(1).map((d, l) => {
    const bound = 1 / Math.sqrt(dims[l]);
    return {
      w: random.uniform(random.key(1 + l), [dims[l], d], { minval: -bound, maxval: bound }),
      b: random.uniform(random.key(101 + l), [d], { minval: -bound, maxval: bound }),
    };
  });
  const zeros = () => tree.map((p) => np.zerosLike(p.ref), params);
  const net = (p, x) => {
    let h = x;
    p.forEach((L, i) => {
      h = np.matmul(h, L.w).add(L.b);
      if (i + 1 < p.length) h = nn.silu(h);
    });
    return h;
  };
  const loss = (p, x0, t, x1) => {
    const xt = x0.ref.mul(np.subtract(1, t.ref)).add(x1.ref.mul(t.ref));
    const u = x1.sub(x0);
    const v = net(p, np.concatenate([xt, t], 1));
    return np.square(v.sub(u)).sum(1).mean();
  };
  const step = jit((p, m, v, key, b1t, b2t, pool) => {
    const keys = random.split(key, 4);
    const x0 = random.normal(keys.ref.slice(0), [batch, 2]);
    const t = random.uniform(keys.ref.slice(1), [batch, 1]);
    const idx = random.randint(keys.ref.slice(2), { minval: 0, maxval: POOL, shape: [batch] });
    const x1 = np.take(pool, idx, 0);
    const [value, g] = valueAndGrad(loss)(tree.ref(p), x0, t, x1);
    const nb1t = b1t.mul(b1);
    const nb2t = b2t.mul(b2);
    const c1 = np.divide(1, np.subtract(1, nb1t.ref));
    const c2 = np.divide(1, np.subtract(1, nb2t.ref));
    const nm = tree.map((mi, gi) => mi.mul(b1).add(gi.mul(1 - b1)), m, tree.ref(g));
    const nv = tree.map((vi, gi) => vi.mul(b2).add(gi.ref.mul(gi).mul(1 - b2)), v, g);
    const np_ = tree.map(
      (pi, mi, vi) => pi.sub(mi.mul(c1.ref).div(np.sqrt(vi.mul(c2.ref)).add(eps)).mul(lr)),
      p, tree.ref(nm), tree.ref(nv),
    );
    c1.dispose();
    c2.dispose();
    return [np_, nm, nv, keys.slice(3), nb1t, nb2t, value];
  });
  const pool = np.array(moonsPool(POOL, 7)).reshape([POOL, 2]);
  let state = [params, zeros(), zeros(), random.key(0), np.array(1.0), np.array(1.0)];
  let value = null;
  const run = (n) => {
    for (let i = 0; i < n; i++) {
      if (value) value.dispose();
      const out = step(...state, pool.ref);
      value = out.pop();
      state = out;
    }
  };
  await warmUp(async (n) => { run(n); await value.ref.data(); });
  let loss_ = NaN;
  const extra = { jax_js: '0.1.25', jit: 'whole step', sync: jaxSync === 'each' ? 'loss read after every step' : 'one read at the end' };
  if (device === 'wasm') extra.wasm_threads = typeof SharedArrayBuffer !== 'undefined' ? navigator.hardwareConcurrency : 1;
  return {
    adapter: device === 'webgpu' ? gpuAdapter(jax.getWebGPUDevice()) : cpuAdapter(),
    extra,
    async time(n) {
      const t0 = performance.now();
      if (jaxSync === 'each') {
        for (let i = 0; i < n; i++) {
          run(1);
          loss_ = (await value.ref.data())[0];
        }
      } else {
        run(n);
        loss_ = (await value.ref.data())[0];
      }
      return (performance.now() - t0) / 1000;
    },
    loss: () => loss_,
    dispose() {
      value.dispose();
      tree.dispose(state);
      pool.dispose();
      step.dispose();
    },
  };
}

/// Warm-up outside the timing: kernel compilation on the first steps, then until the library's
/// own JavaScript is optimised (at least 10 steps and half a second).
async function warmUp(run) {
  await run(3);
  const t0 = performance.now();
  let n = 0;
  while (n < 10 || performance.now() - t0 < 500) {
    await run(1);
    n += 1;
  }
}

/// Times `impls` (name → {time(n), n}) in `rounds` alternating rounds of `impl.n` steps each;
/// returns name → {steps, seconds, round_steps_per_s}.
async function alternate(impls, rounds, label) {
  const out = Object.fromEntries(Object.keys(impls).map((k) => [k, { steps: 0, seconds: 0, round_steps_per_s: [] }]));
  for (let r = 0; r < rounds; r++) {
    for (const [k, impl] of Object.entries(impls)) {
      progress(`${label}: ${k}, round ${r + 1} of ${rounds}…`);
      const s = await impl.time(impl.n);
      out[k].steps += impl.n;
      out[k].seconds += s;
      out[k].round_steps_per_s.push(r3(impl.n / s));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

async function gpuSide() {
  progress(`wgpu ${config}…`);
  const wgpu = JSON.parse(await runBench(config, steps, particles, kernels, perSubmit));
  // wgpu on the web reports no adapter name; the page's own request names the same default adapter.
  const page = navigator.gpu ? gpuAdapter({ adapterInfo: (await navigator.gpu.requestAdapter())?.info }) : { adapter: '(no WebGPU)' };
  wgpu.adapter = wgpu.adapter || page.adapter;
  const out = { adapter: wgpu.adapter, backend: wgpu.backend, device_type: wgpu.device_type, adapter_js: page, wgpu };
  for (const lib of ['jax', 'tfjs']) {
    if (!baselines.includes(lib)) continue;
    progress(`${lib} WebGPU ${config}…`);
    const impl = lib === 'jax' ? await makeJax('webgpu', config) : await makeTfjs('webgpu', config);
    const seconds = await impl.time(wgpu.steps);
    const extra = { ...impl.extra };
    if (lib === 'tfjs') Object.assign(extra, await impl.sample(wgpu.particles, wgpu.ode_steps));
    impl.dispose();
    out[lib] = report(lib === 'jax' ? 'jax-js' : 'tfjs', 'webgpu', config, wgpu.steps, seconds, impl.loss(), impl.adapter, extra);
    out[`ratio_vs_${lib}`] = ratio(wgpu, out[lib]);
  }
  if (out.tfjs) out.ratio_particle_steps_vs_tfjs = Math.round((wgpu.particle_steps_per_s / out.tfjs.particle_steps_per_s) * 100) / 100;
  return out;
}

async function cpuSide() {
  const a = cpuAdapter();
  const rounds = Math.max(1, Number(q.get('cpu_rounds') || 3));
  progress(`flowmatch CPU ${config}: sizing…`);
  // The first call sizes the rounds (about two seconds of flowmatch in all unless cpu_steps).
  const probe = JSON.parse(runCpuBench(config, cpuSteps, 'cpu', a.adapter, coupling));
  const n = cpuSteps > 0 ? cpuSteps : Math.max(1, Math.round(probe.steps / rounds));
  const last = {};
  const ourBackend = (backend, steps) => ({
    n: steps,
    time: async (k) => { last[backend] = JSON.parse(runCpuBench(config, k, backend, a.adapter, coupling)); return last[backend].train_seconds; },
  });
  const impls = { ours: ourBackend('cpu', n) };
  // The scalar reference is several times slower: a sixth of the steps keeps the rounds short.
  if (q.get('reference') === '1') impls.reference = ourBackend('cpu-reference', Math.max(1, Math.round(n / 6)));
  const made = {};
  for (const lib of ['jax', 'tfjs']) {
    if (!baselines.includes(lib)) continue;
    progress(`${lib} wasm ${config}: compiling…`);
    made[lib] = lib === 'jax' ? await makeJax('wasm', config) : await makeTfjs('wasm', config);
    impls[lib] = Object.assign(made[lib], { n });
  }
  const timed = await alternate(impls, rounds, `CPU ${config}`);
  const out = { adapter: a.adapter, device_type: 'cpu', cross_origin_isolated: self.crossOriginIsolated === true, rounds };
  for (const name of ['ours', 'reference']) {
    if (!timed[name]) continue;
    const t = timed[name];
    const r = { ...last[name === 'ours' ? 'cpu' : 'cpu-reference'], steps: t.steps, train_seconds: r3(t.seconds), steps_per_s: r3(t.steps / t.seconds) };
    r.step_ms = r3(1000 / r.steps_per_s);
    r.gflops = r3((r.flop_per_step * r.steps_per_s) / 1e9);
    r.round_steps_per_s = t.round_steps_per_s;
    out[name] = r;
  }
  if (out.reference) out.ratio_vs_reference = ratio(out.ours, out.reference);
  for (const [lib, impl] of Object.entries(made)) {
    impl.dispose();
    const t = timed[lib];
    out[lib] = report(lib === 'jax' ? 'jax-js' : 'tfjs', 'wasm', config, t.steps, t.seconds, impl.loss(), impl.adapter, { ...impl.extra, round_steps_per_s: t.round_steps_per_s });
    out[`ratio_vs_${lib}`] = ratio(out.ours, out[lib]);
  }
  return out;
}

async function main() {
  if (!CONFIGS[config]) throw new Error(`unknown config '${config}': expected S, M or L`);
  const pkg = await import(`../${pkgDir}/flowmatch.js`);
  ({ runBench, runCpuBench } = pkg);
  await pkg.default();
  const result = { config, user_agent: navigator.userAgent, hardware_concurrency: navigator.hardwareConcurrency };
  for (const side of sides) {
    if (side === 'gpu') result.gpu = await gpuSide();
    else if (side === 'cpu') result.cpu = await cpuSide();
    else throw new Error(`unknown side '${side}': expected gpu or cpu`);
  }
  // Before this page measured both sides, a plain run reported the wgpu JSON alone.
  const plain = sides.length === 1 && sides[0] === 'gpu' && baselines.length === 0;
  document.getElementById('result').textContent = JSON.stringify(plain ? result.gpu.wgpu : result);
  progress('done');
  document.body.dataset.status = 'done';
}

main().catch((e) => {
  document.getElementById('result').textContent = String(e && e.message ? e.message : e);
  progress('error');
  document.body.dataset.status = 'error';
});
