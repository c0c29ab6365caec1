// Browser benchmark driver for www/bench.html (see the comment there). The wgpu measurement is
// src/bench.rs, exported as runBench by src/web/bench.rs; the TensorFlow.js baseline below builds
// the same network (3 -> depth x [width, SiLU] -> 2, PyTorch-style uniform init), the same CFM
// batch and loss (x_t = (1-(1-σmin)t)x0 + t·x1, u = x1 - (1-σmin)x0, mean_b ‖v - u‖², σmin = 0)
// and Adam(lr 1e-3), and times it the same way: warm-up, then N steps with no readback, ended by
// one awaited read. FLOPs per step use the same formula: 6·batch·Σ in·out.
import init, { runBench } from '../pkg/flowmatch.js';

const CONFIGS = { S: [64, 3, 256], M: [256, 4, 1024], L: [512, 4, 4096] };
const q = new URLSearchParams(location.search);
const config = (q.get('config') || 'S').toUpperCase();
const steps = Number(q.get('steps') || 0);
const particles = Number(q.get('particles') || 0);
const baseline = q.get('baseline') || '';
const kernels = q.get('kernels') || ''; // software | tiled | '' (the adapter's choice)
const progress = (s) => { document.getElementById('progress').textContent = s; };

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

async function tfjsBench(name, nSteps, nParticles, odeSteps) {
  await loadScript('../bench/node_modules/@tensorflow/tfjs/dist/tf.min.js');
  await loadScript('../bench/node_modules/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js');
  const tf = window.tf;
  if (!(await tf.setBackend('webgpu'))) throw new Error('TensorFlow.js could not start its WebGPU backend');
  await tf.ready();
  const [width, depth, batch] = CONFIGS[name];
  const dims = [3, ...Array(depth).fill(width), 2];
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
  const nPool = 100000;
  const pool = tf.tensor2d(moonsPool(nPool, 7), [nPool, 2]);
  const opt = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
  const step = (returnCost) => tf.tidy(() => opt.minimize(() => {
    const x0 = tf.randomNormal([batch, 2]);
    const t = tf.randomUniform([batch, 1]);
    const x1 = tf.gather(pool, tf.randomUniformInt([batch], 0, nPool));
    const xt = tf.add(tf.mul(tf.sub(1, t), x0), tf.mul(t, x1));
    const u = tf.sub(x1, x0);
    const v = net(tf.concat([xt, t], 1));
    return tf.mean(tf.sum(tf.square(tf.sub(v, u)), 1));
  }, returnCost));
  for (let i = 0; i < 3; i++) step(false);
  await layers[0].w.data();
  const t0 = performance.now();
  for (let i = 0; i + 1 < nSteps; i++) step(false);
  const cost = step(true);
  const loss = (await cost.data())[0];
  cost.dispose();
  const trainSeconds = (performance.now() - t0) / 1000;
  // Sampling: Euler through the same network, no readback until the end.
  let x = tf.randomNormal([nParticles, 2]);
  const h = 1 / odeSteps;
  const euler = (xc, k) => tf.tidy(() => tf.add(xc, tf.mul(h, net(tf.concat([xc, tf.fill([nParticles, 1], k * h)], 1)))));
  const warm = euler(x, 0); await warm.data(); warm.dispose();
  const s0 = performance.now();
  for (let k = 0; k < odeSteps; k++) { const nx = euler(x, k); x.dispose(); x = nx; }
  await x.data();
  const sampleSeconds = (performance.now() - s0) / 1000;
  x.dispose();
  const macs = dims.slice(1).reduce((m, d, i) => m + dims[i] * d, 0);
  const stepsPerS = nSteps / trainSeconds;
  const r = (v) => Math.round(v * 1000) / 1000;
  return {
    impl: 'tfjs', tfjs: tf.version.tfjs, backend: tf.getBackend(), config: name, width, depth, batch,
    steps: nSteps, train_seconds: r(trainSeconds), steps_per_s: r(stepsPerS), step_ms: r(1000 / stepsPerS),
    flop_per_step: 6 * batch * macs, gflops: r(6 * batch * macs * stepsPerS / 1e9),
    particles: nParticles, ode_solver: 'euler', ode_steps: odeSteps,
    particle_steps_per_s: r(nParticles * odeSteps / sampleSeconds), final_loss: r(loss),
    tensors_alive: tf.memory().numTensors,
  };
}

async function main() {
  if (!CONFIGS[config]) throw new Error(`unknown config '${config}': expected S, M or L`);
  await init();
  progress(`wgpu ${config}…`);
  const wgpu = JSON.parse(await runBench(config, steps, particles, kernels));
  let result = wgpu;
  if (baseline === 'tfjs') {
    progress(`TensorFlow.js ${config}…`);
    const tfjs = await tfjsBench(config, wgpu.steps, wgpu.particles, wgpu.ode_steps);
    result = {
      config, adapter: wgpu.adapter, wgpu, tfjs,
      ratio_steps_per_s: Math.round((wgpu.steps_per_s / tfjs.steps_per_s) * 100) / 100,
      ratio_particle_steps_per_s: Math.round((wgpu.particle_steps_per_s / tfjs.particle_steps_per_s) * 100) / 100,
    };
  }
  document.getElementById('result').textContent = JSON.stringify(result);
  progress('done');
  document.body.dataset.status = 'done';
}

main().catch((e) => {
  document.getElementById('result').textContent = String(e && e.message ? e.message : e);
  progress('error');
  document.body.dataset.status = 'error';
});
