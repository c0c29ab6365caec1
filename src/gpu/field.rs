//! The learned velocity `v_θ(x, y, t)` at arbitrary inputs, on the GPU (`shaders/field.wgsl`;
//! twin `cpu::mlp::velocity`): what `flowmatch field` evaluates. Reads a parameter buffer
//! directly (a trainer's, or one uploaded from a model file).

use super::readback::read_f32;
use super::shaders::{bind_group, bind_group_layout, compute_pipeline, Binding, Kernel};
use super::trainer::check_fits;
use super::uniforms::{FieldParams, ModelDesc};
use super::{dispatch_groups, GpuContext, GpuError};
use crate::model::{ModelShape, IN_DIM};
use wgpu::util::DeviceExt;

pub struct GpuField {
    ctx: GpuContext,
    capacity: u32,
    inputs: wgpu::Buffer,
    out: wgpu::Buffer,
    uniform: wgpu::Buffer,
    _model: wgpu::Buffer,
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    _live: super::counter::Owned,
}

impl GpuField {
    /// Room for up to `capacity` points per evaluation.
    pub fn new(ctx: &GpuContext, shape: &ModelShape, params: &wgpu::Buffer, capacity: u32) -> Result<Self, GpuError> {
        let capacity = capacity.max(1);
        check_fits(ctx, &[("field inputs", capacity as u64 * IN_DIM as u64 * 4), ("field outputs", capacity as u64 * 8)])?;
        let device = &ctx.device;
        let storage = |label: &str, bytes: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let inputs = storage("field.inputs", capacity as u64 * IN_DIM as u64 * 4);
        let out = storage("field.out", capacity as u64 * 8);
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("field.params"),
            size: std::mem::size_of::<FieldParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let model = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("field.model"),
            contents: bytemuck::bytes_of(&ModelDesc::for_shape(shape)),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        use Binding::*;
        let bgl = bind_group_layout(device, "field", &[Uniform, Uniform, StorageRead, StorageRead, StorageReadWrite]);
        let pipeline = compute_pipeline(device, Kernel::Field, "eval_field", &bgl, Some(shape.width));
        let group = bind_group(device, "field", &bgl, &[(&uniform, None), (&model, None), (params, None), (&inputs, None), (&out, None)]);
        let _live = super::counter::Owned::new(&[&inputs, &out, &uniform, &model]);
        Ok(GpuField { ctx: ctx.clone(), capacity, inputs, out, uniform, _model: model, pipeline, group, _live })
    }

    /// Points per evaluation at most.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// `v_θ` at each point of `inputs`: `IN_DIM` floats per point in the network's input order
    /// (`model::INPUTS`: x, y, t), at most `capacity` points.
    pub async fn eval(&self, inputs: &[f32]) -> Result<Vec<[f32; 2]>, GpuError> {
        let dim = IN_DIM as usize;
        if inputs.len() % dim != 0 {
            return Err(GpuError::Invalid(format!("{} input values are not whole points of {dim}", inputs.len())));
        }
        let n = inputs.len() / dim;
        if n > self.capacity as usize {
            return Err(GpuError::Invalid(format!("{n} points exceed the field evaluator's capacity of {}", self.capacity)));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let q = &self.ctx.queue;
        q.write_buffer(&self.inputs, 0, bytemuck::cast_slice(inputs));
        q.write_buffer(&self.uniform, 0, bytemuck::bytes_of(&FieldParams { n: n as u32, _pad: [0; 3] }));
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("field") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("field"), timestamp_writes: None });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.group, &[]);
            let (x, y) = dispatch_groups(n as u32, 64);
            pass.dispatch_workgroups(x, y, 1);
        }
        q.submit([encoder.finish()]);
        let flat = read_f32(&self.ctx, &self.out, 0, 2 * n as u64).await?;
        Ok(flat.chunks_exact(2).map(|v| [v[0], v[1]]).collect())
    }
}
