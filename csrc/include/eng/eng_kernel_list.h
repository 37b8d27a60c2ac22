/* eng_kernel_list.h: one line per kernel slot of the dispatch table.
 * ENG_KERNEL(name, type): `name` is the slot, `type` its function (or descriptor) pointer type from
 * eng_kernels.h. Adding a slot here adds it to struct eng_kernels, to kernel_info() and to the C tests. */
ENG_KERNEL(gemm_f32, const eng_gemm_f32_impl_t *)
ENG_KERNEL(gemv_f32, eng_gemv_f32_fn)
ENG_KERNEL(bias_act_f32, eng_bias_act_f32_fn)
ENG_KERNEL(act_f32, eng_act_f32_fn)
ENG_KERNEL(binary_f32, eng_binary_f32_fn)
ENG_KERNEL(binary_s_f32, eng_binary_s_f32_fn)
ENG_KERNEL(softmax_f32, eng_softmax_f32_fn)
ENG_KERNEL(norm_f32, eng_norm_f32_fn)
ENG_KERNEL(reduce_f32, eng_reduce_f32_fn)
ENG_KERNEL(pool2d_f32, eng_pool2d_f32_fn)
ENG_KERNEL(dwconv2d_f32, eng_dwconv2d_f32_fn)
