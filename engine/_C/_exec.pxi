# The executor's inner loop (engine.session._Plan.execute): walks a plan of steps without per-node Python
# bytecode. A step is (fn, input slots, output slots, slots to release, step object); slot -1 is an absent
# optional value. Included from _kernels.pyx; uses only the Python C-API.
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF
cdef extern from "Python.h":
    object PyObject_Call(object callable, object args, void *kwargs)


def execute_plan(list env, list program):
    """Runs `program` on `env` in place. On an exception in step i, re-raises it with attribute
    `_engine_step = i` set (the Python side names the node)."""
    cdef Py_ssize_t i = 0, j, n_in, n_out, s
    cdef tuple step, ins, outs, frees, args
    cdef object fn, res, v
    cdef Py_ssize_t n = len(program)
    eng_pool_hold(1)  # the pool's workers spin between this plan's parallel regions (threadpool.c)
    try:
        while i < n:
            step = <tuple>program[i]
            fn = step[0]
            ins = <tuple>step[1]
            outs = <tuple>step[2]
            frees = <tuple>step[3]
            n_in = len(ins)
            args = PyTuple_New(n_in)
            for j in range(n_in):
                s = <Py_ssize_t>ins[j]
                v = env[s] if s >= 0 else None
                Py_INCREF(v)
                PyTuple_SET_ITEM(args, j, v)
            res = PyObject_Call(fn, args, NULL)
            n_out = len(outs)
            if n_out == 1:
                s = <Py_ssize_t>outs[0]
                if s >= 0:
                    env[s] = res[0]
            else:
                for j in range(n_out):
                    s = <Py_ssize_t>outs[j]
                    if s >= 0:
                        env[s] = res[j]
            for j in range(len(frees)):
                env[<Py_ssize_t>frees[j]] = None
            i += 1
    except BaseException as e:
        try:
            e._engine_step = i
        except Exception:
            pass
        raise
    finally:
        eng_pool_hold(0)
