/* Runs a sequence of compiled cpu kernels in one call from Python: each launch is
 * (function address, inputs, outputs, packed parameters), where inputs and outputs are
 * buffers with an ``address`` attribute or plain integer addresses. Every address is read
 * first; then the kernels run in order with the GIL released. Optional: without this
 * extension the cpu backend calls each kernel through ctypes.
 *
 * Besides compiled kernels, a launch may run oneDNN primitives (`run_primitives`, whose
 * address `primitive_runner()` gives): the cpu backend's oneDNN programs hand their
 * executions to the same sequence instead of calling oneDNN through ctypes one by one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

typedef void (*KernelFunction)(void* const* inputs, void* const* outputs, const void* parameters,
                               long long num_threads);

typedef struct {
  KernelFunction function;
  void** inputs;
  void** outputs;
  const char* parameters;
} Call;

static PyObject* str_address = NULL;

/* oneDNN's C entry points (dnnl_memory_set_data_handle, dnnl_primitive_execute,
 * dnnl_stream_wait), whose addresses the parameters carry: this module does not link oneDNN. */
typedef int (*SetDataHandle)(void* memory, void* handle);
typedef int (*ExecutePrimitive)(void* primitive, void* stream, int count, const void* arguments);
typedef int (*WaitStream)(void* stream);

/* The parameters of a `run_primitives` launch: this header, then ``steps`` PrimitiveStep,
 * each followed by its ``binding_count`` Binding. Every field is 8 bytes (packed by
 * onednn.py as native-endian 64-bit integers). */
typedef struct {
  SetDataHandle set_handle;
  ExecutePrimitive execute;
  WaitStream wait;
  pthread_mutex_t* lock; /* the program's: its memory objects are rebound at each run */
  long long steps;
} PrimitiveRun;

typedef struct {
  void* primitive;
  const void* arguments; /* dnnl_exec_arg_t[argument_count]: the primitive's memory objects */
  long long argument_count;
  long long binding_count;
  void** bound; /* the address each bound memory object holds now (rebound when it changes) */
} PrimitiveStep;

typedef struct {
  void* memory;
  long long slot; /* the input slot whose address the memory object takes */
} Binding;

/* The failure status of this thread's last `run_primitives`, read and cleared by `run`. */
static _Thread_local int primitive_status = 0;

/* A launch running oneDNN primitives in order, then waiting for the stream: ``slots`` are
 * the addresses the memory objects take (inputs, output, scratch), ``outputs[0]`` is the
 * calling thread's oneDNN stream. A failure stops the steps and is left in primitive_status. */
static void run_primitives(void* const* slots, void* const* outputs, const void* parameters, long long num_threads) {
  (void)num_threads; /* oneDNN takes the OpenMP thread count the caller set */
  const PrimitiveRun* run = (const PrimitiveRun*)parameters;
  void* stream = outputs[0];
  const char* next = (const char*)(run + 1);
  int status = 0;
  pthread_mutex_lock(run->lock);
  for (long long s = 0; s < run->steps && !status; ++s) {
    const PrimitiveStep* step = (const PrimitiveStep*)next;
    const Binding* bindings = (const Binding*)(step + 1);
    for (long long b = 0; b < step->binding_count && !status; ++b) {
      void* address = slots[bindings[b].slot];
      if (step->bound[b] != address) {
        status = run->set_handle(bindings[b].memory, address);
        step->bound[b] = status ? NULL : address;
      }
    }
    if (!status) status = run->execute(step->primitive, stream, (int)step->argument_count, step->arguments);
    next = (const char*)(bindings + step->binding_count);
  }
  if (!status) status = run->wait(stream);
  pthread_mutex_unlock(run->lock);
  if (status) primitive_status = status;
}

/* Sets the error for a oneDNN failure (status ``status``) as metajit.errors.MetajitDeviceError. */
static void set_primitive_error(int status) {
  PyObject* errors = PyImport_ImportModule("metajit.errors");
  PyObject* type = errors ? PyObject_GetAttrString(errors, "MetajitDeviceError") : NULL;
  Py_XDECREF(errors);
  if (type == NULL) {
    PyErr_Clear();
    type = PyExc_RuntimeError;
    Py_INCREF(type);
  }
  PyErr_Format(type, "oneDNN execute failed with status %d", status);
  Py_DECREF(type);
}

/* The address held by ``item`` (an int, or an object's ``address``); -1 with an error set. */
static int address_of(PyObject* item, void** address) {
  PyObject* value = PyLong_Check(item) ? (Py_INCREF(item), item) : PyObject_GetAttr(item, str_address);
  if (value == NULL) return -1;
  *address = PyLong_AsVoidPtr(value);
  Py_DECREF(value);
  return PyErr_Occurred() ? -1 : 0;
}

/* Reads ``buffers`` (a list or tuple) into ``slots``; returns the count or -1. */
/* The address of item ``k`` of ``buffers`` (a list or tuple), held while it is read: reading
 * an ``address`` attribute may run Python code that changes the list. -1 with an error set. */
static int address_at(PyObject* buffers, Py_ssize_t k, void** address) {
  if (k >= PySequence_Fast_GET_SIZE(buffers)) {
    PyErr_SetString(PyExc_RuntimeError, "launch: a list of buffers changed while it was read");
    return -1;
  }
  PyObject* item = PySequence_Fast_ITEMS(buffers)[k];
  Py_INCREF(item);
  int status = address_of(item, address);
  Py_DECREF(item);
  return status;
}

/* Reads ``buffers`` (a list or tuple) into ``slots``, which end before ``end``; returns the
 * count or -1. */
static Py_ssize_t read_addresses(PyObject* buffers, void** slots, void** end) {
  if (!PyList_Check(buffers) && !PyTuple_Check(buffers)) {
    PyErr_SetString(PyExc_TypeError, "launch: inputs and outputs must be lists or tuples");
    return -1;
  }
  Py_ssize_t count = PySequence_Fast_GET_SIZE(buffers);
  if (count >= end - slots) { /* (one slot more stays null) */
    PyErr_SetString(PyExc_RuntimeError, "launch: a launch list changed while it was read");
    return -1;
  }
  for (Py_ssize_t k = 0; k < count; ++k)
    if (address_at(buffers, k, &slots[k]) < 0) return -1;
  return count;
}

static Py_ssize_t buffer_count(PyObject* buffers) {
  return PyList_Check(buffers) || PyTuple_Check(buffers) ? PySequence_Fast_GET_SIZE(buffers) : 0;
}

/* Runs ``count`` calls in order with the GIL released, taking it back between two calls to
 * notice Ctrl-C (a signal handler's exception); None, or NULL with the exception set, which
 * carries ``metajit_completed`` (the calls that finished). */
static PyObject* execute(const Call* calls, Py_ssize_t count, long long num_threads) {
  Py_ssize_t completed = 0;
  int interrupted = 0, failed = 0;
  PyThreadState* state = PyEval_SaveThread();
  while (completed < count) {
    calls[completed].function(calls[completed].inputs, calls[completed].outputs, calls[completed].parameters,
                              num_threads);
    if (primitive_status) {
      failed = primitive_status;
      primitive_status = 0;
      break;
    }
    ++completed;
    if (completed < count) {
      PyEval_RestoreThread(state);
      interrupted = PyErr_CheckSignals() < 0;
      state = PyEval_SaveThread();
      if (interrupted) break;
    }
  }
  PyEval_RestoreThread(state);
  if (failed) set_primitive_error(failed);
  if (interrupted || failed) {
    /* the caller keeps what finished: the exception carries how many launches completed */
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    PyObject* done = PyLong_FromSsize_t(completed);
    if (value != NULL && done != NULL) PyObject_SetAttrString(value, "metajit_completed", done);
    Py_XDECREF(done);
    PyErr_Restore(type, value, traceback);
    return NULL;
  }
  Py_RETURN_NONE;
}

/* The address slots ``launches`` (a list of (address, inputs, outputs, bytes)) need, a null
 * one after each input and output list included (kernels index their arrays
 * unconditionally); -1 with an error set when a launch is malformed. */
static Py_ssize_t count_slots(PyObject* launches) {
  Py_ssize_t count = PyList_GET_SIZE(launches), slots = 1;
  for (Py_ssize_t k = 0; k < count; ++k) {
    PyObject* launch = PyList_GET_ITEM(launches, k);
    if (!PyTuple_Check(launch) || PyTuple_GET_SIZE(launch) != 4 || !PyBytes_Check(PyTuple_GET_ITEM(launch, 3))) {
      PyErr_SetString(PyExc_TypeError, "launch: each launch must be (address, inputs, outputs, bytes)");
      return -1;
    }
    slots += buffer_count(PyTuple_GET_ITEM(launch, 1)) + buffer_count(PyTuple_GET_ITEM(launch, 2)) + 2;
  }
  return slots;
}

/* Fills ``calls`` (``count`` of them) from ``launches``, their addresses in ``addresses``
 * (zeroed, ``slots`` long); -1 with an error set. The calls point at the launches' parameter
 * bytes. */
static int read_calls(PyObject* launches, Py_ssize_t count, Call* calls, void** addresses, Py_ssize_t slots) {
  void** next = addresses;
  void** end = addresses + slots;
  for (Py_ssize_t k = 0; k < count; ++k) {
    if (PyList_GET_SIZE(launches) != count) {
      PyErr_SetString(PyExc_RuntimeError, "launch: the launch list changed while it was read");
      return -1;
    }
    PyObject* launch = PyList_GET_ITEM(launches, k);
    if (!PyTuple_Check(launch) || PyTuple_GET_SIZE(launch) != 4 || !PyBytes_Check(PyTuple_GET_ITEM(launch, 3))) {
      PyErr_SetString(PyExc_TypeError, "launch: each launch must be (address, inputs, outputs, bytes)");
      return -1;
    }
    void* function;
    if (address_of(PyTuple_GET_ITEM(launch, 0), &function) < 0 || function == NULL) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "launch: null kernel address");
      return -1;
    }
    calls[k].function = (KernelFunction)function;
    calls[k].inputs = next;
    Py_ssize_t read = read_addresses(PyTuple_GET_ITEM(launch, 1), next, end);
    if (read < 0) return -1;
    next += read + 1;
    calls[k].outputs = next;
    read = read_addresses(PyTuple_GET_ITEM(launch, 2), next, end);
    if (read < 0) return -1;
    next += read + 1;
    calls[k].parameters = PyBytes_AS_STRING(PyTuple_GET_ITEM(launch, 3));
  }
  return 0;
}

/* run(launches, num_threads): run every launch of the list ``launches`` in order. */
static PyObject* run(PyObject* self, PyObject* args) {
  PyObject* launches;
  long long num_threads;
  if (!PyArg_ParseTuple(args, "O!L", &PyList_Type, &launches, &num_threads)) return NULL;
  Py_ssize_t count = PyList_GET_SIZE(launches), slots = count_slots(launches);
  if (slots < 0) return NULL;
  void** addresses = PyMem_Calloc(slots, sizeof(void*));
  Call* calls = PyMem_Calloc(count ? count : 1, sizeof(Call));
  /* the list (and so every parameter bytes object) stays referenced by the caller */
  PyObject* result = addresses == NULL || calls == NULL ? PyErr_NoMemory()
                     : read_calls(launches, count, calls, addresses, slots) < 0 ? NULL
                     : execute(calls, count, num_threads);
  PyMem_Free(addresses);
  PyMem_Free(calls);
  return result;
}

/* pack(launches): ``(packed, parameters)``: the launches read once into a bytes object (a
 * call count, the calls, their addresses), for `run_packed`; ``parameters`` holds the
 * parameter bytes objects the packed calls point into (keep it with ``packed``). */
static PyObject* pack(PyObject* self, PyObject* args) {
  PyObject* launches;
  if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &launches)) return NULL;
  Py_ssize_t count = PyList_GET_SIZE(launches), slots = count_slots(launches);
  if (slots < 0) return NULL;
  Py_ssize_t header = (Py_ssize_t)sizeof(long long) + count * (Py_ssize_t)sizeof(Call);
  PyObject* packed = PyBytes_FromStringAndSize(NULL, header + slots * (Py_ssize_t)sizeof(void*));
  PyObject* parameters = PyTuple_New(count);
  if (packed == NULL || parameters == NULL) goto error;
  char* data = PyBytes_AS_STRING(packed); /* filled in place: its pointers point into itself */
  memset(data, 0, PyBytes_GET_SIZE(packed));
  *(long long*)data = count;
  if (read_calls(launches, count, (Call*)(data + sizeof(long long)), (void**)(data + header), slots) < 0)
    goto error;
  if (PyList_GET_SIZE(launches) != count) {
    PyErr_SetString(PyExc_RuntimeError, "launch: the launch list changed while it was read");
    goto error;
  }
  for (Py_ssize_t k = 0; k < count; ++k) {
    PyObject* bytes = PyTuple_GET_ITEM(PyList_GET_ITEM(launches, k), 3);
    Py_INCREF(bytes);
    PyTuple_SET_ITEM(parameters, k, bytes);
  }
  return Py_BuildValue("(NN)", packed, parameters);
error:
  Py_XDECREF(packed);
  Py_XDECREF(parameters);
  return NULL;
}

/* run_packed(packed, num_threads): run the launches `pack` read into ``packed``. */
static PyObject* run_packed(PyObject* self, PyObject* args) {
  PyObject* packed;
  long long num_threads;
  if (!PyArg_ParseTuple(args, "O!L", &PyBytes_Type, &packed, &num_threads)) return NULL;
  const char* data = PyBytes_AS_STRING(packed);
  Py_ssize_t size = PyBytes_GET_SIZE(packed);
  long long count = size >= (Py_ssize_t)sizeof(long long) ? *(const long long*)data : -1;
  if (count < 0 || size < (Py_ssize_t)(sizeof(long long) + count * sizeof(Call))) {
    PyErr_SetString(PyExc_ValueError, "run_packed: not a packed launch list");
    return NULL;
  }
  return execute((const Call*)(data + sizeof(long long)), (Py_ssize_t)count, num_threads);
}

/* Appends ``value`` to ``words`` (a growing array of 8-byte words); -1 when out of memory. */
static int append_word(long long** words, Py_ssize_t* count, Py_ssize_t* capacity, long long value) {
  if (*count == *capacity) {
    Py_ssize_t grown = *capacity ? 2 * *capacity : 256;
    long long* larger = PyMem_Realloc(*words, grown * sizeof(long long));
    if (larger == NULL) return -1;
    *words = larger;
    *capacity = grown;
  }
  (*words)[(*count)++] = value;
  return 0;
}

/* Appends the addresses of ``buffers`` (a list or tuple), after their count; -1 with an error set. */
static int append_addresses(long long** words, Py_ssize_t* count, Py_ssize_t* capacity, PyObject* buffers) {
  Py_ssize_t size = buffer_count(buffers);
  if (append_word(words, count, capacity, size) < 0) return (PyErr_NoMemory(), -1);
  for (Py_ssize_t k = 0; k < size; ++k) {
    void* address;
    if (address_at(buffers, k, &address) < 0) return -1;
    if (append_word(words, count, capacity, (long long)(intptr_t)address) < 0) return (PyErr_NoMemory(), -1);
  }
  return 0;
}

/* Appends ``parameters`` (None, a list or a tuple of Python ints and floats) as a tag and the
 * value's bits each, after their count; 1 when one is anything else (or an int past 64 bits),
 * -1 when out of memory. The bits tell -0.0 from 0.0 and 1 from 1.0, which compare equal. */
static int append_parameters(long long** words, Py_ssize_t* count, Py_ssize_t* capacity, PyObject* parameters) {
  Py_ssize_t size = buffer_count(parameters);
  if (parameters != Py_None && size == 0 && !PyList_Check(parameters) && !PyTuple_Check(parameters)) return 1;
  if (append_word(words, count, capacity, size) < 0) return -1;
  PyObject** items = size ? PySequence_Fast_ITEMS(parameters) : NULL;
  for (Py_ssize_t k = 0; k < size; ++k) {
    long long tag, bits;
    if (PyFloat_Check(items[k])) {
      double value = PyFloat_AS_DOUBLE(items[k]);
      memcpy(&bits, &value, sizeof bits);
      tag = 1;
    } else if (PyLong_Check(items[k])) {
      int overflow;
      bits = PyLong_AsLongLongAndOverflow(items[k], &overflow);
      if (overflow || (bits == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 1;
      }
      tag = PyBool_Check(items[k]) ? 3 : 2;
    } else {
      return 1;
    }
    if (append_word(words, count, capacity, tag) < 0 || append_word(words, count, capacity, bits) < 0) return -1;
  }
  return 0;
}

/* signature(launches): ``(programs, words)`` telling apart the launch sequences that differ
 * in what they run: the programs in order (a tuple), and every input and output address and
 * the tag and bits of every parameter (bytes); None when a parameter is neither an int nor a
 * float. ``launches`` is a list of (program, inputs, outputs, parameters). */
static PyObject* signature(PyObject* self, PyObject* args) {
  PyObject* launches;
  if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &launches)) return NULL;
  Py_ssize_t launch_count = PyList_GET_SIZE(launches), count = 0, capacity = 0;
  long long* words = NULL;
  PyObject* programs = PyTuple_New(launch_count);
  if (programs == NULL) return NULL;
  for (Py_ssize_t k = 0; k < launch_count; ++k) {
    PyObject* launch = PyList_GET_ITEM(launches, k);
    if (!PyTuple_Check(launch) || PyTuple_GET_SIZE(launch) != 4) {
      PyErr_SetString(PyExc_TypeError, "signature: each launch must be (program, inputs, outputs, parameters)");
      goto error;
    }
    Py_INCREF(PyTuple_GET_ITEM(launch, 0));
    PyTuple_SET_ITEM(programs, k, PyTuple_GET_ITEM(launch, 0));
    if (append_addresses(&words, &count, &capacity, PyTuple_GET_ITEM(launch, 1)) < 0 ||
        append_addresses(&words, &count, &capacity, PyTuple_GET_ITEM(launch, 2)) < 0)
      goto error;
    int found = append_parameters(&words, &count, &capacity, PyTuple_GET_ITEM(launch, 3));
    if (found < 0) {
      PyErr_NoMemory();
      goto error;
    }
    if (found > 0) {
      PyMem_Free(words);
      Py_DECREF(programs);
      Py_RETURN_NONE;
    }
  }
  PyObject* bytes = PyBytes_FromStringAndSize((const char*)words, count * (Py_ssize_t)sizeof(long long));
  PyMem_Free(words);
  if (bytes == NULL) {
    Py_DECREF(programs);
    return NULL;
  }
  return Py_BuildValue("(NN)", programs, bytes);
error:
  PyMem_Free(words);
  Py_DECREF(programs);
  return NULL;
}

/* primitive_runner(): the address of `run_primitives`, a launch's function. */
static PyObject* primitive_runner(PyObject* self, PyObject* unused) {
  return PyLong_FromVoidPtr((void*)run_primitives);
}

/* init_lock(address): initialise the LOCK_BYTES bytes at ``address`` as a mutex. */
static PyObject* init_lock(PyObject* self, PyObject* args) {
  PyObject* address;
  if (!PyArg_ParseTuple(args, "O!", &PyLong_Type, &address)) return NULL;
  void* lock = PyLong_AsVoidPtr(address);
  if (lock == NULL) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "init_lock: null address");
    return NULL;
  }
  if (pthread_mutex_init((pthread_mutex_t*)lock, NULL) != 0) return PyErr_SetFromErrno(PyExc_OSError);
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS,
     "run(launches, num_threads): call each (address, inputs, outputs, parameters) kernel in order; "
     "an exception from a signal handler (Ctrl-C) between two kernels stops the run and carries "
     "metajit_completed, the number of kernels that finished; so does a failed oneDNN launch "
     "(a MetajitDeviceError)."},
    {"pack", pack, METH_VARARGS,
     "pack(launches): (packed, parameters): the launches read once, for run_packed; keep parameters (the "
     "parameter bytes the packed calls point into) with packed."},
    {"run_packed", run_packed, METH_VARARGS,
     "run_packed(packed, num_threads): run the launches pack read, as run does."},
    {"signature", signature, METH_VARARGS,
     "signature(launches): (programs, bytes) telling apart launch sequences: the programs in order, every "
     "input and output address and every parameter's bits; None when a parameter is not an int or float."},
    {"primitive_runner", primitive_runner, METH_NOARGS,
     "primitive_runner(): the address of the launch function that runs oneDNN primitives (see onednn.py)."},
    {"init_lock", init_lock, METH_VARARGS,
     "init_lock(address): initialise LOCK_BYTES bytes at address as the mutex of a primitive launch."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_launch",
                                    "Runs sequences of cpu kernels (see metajit.backends.cpu).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__launch(void) {
  str_address = PyUnicode_InternFromString("address");
  if (str_address == NULL) return NULL;
  PyObject* made = PyModule_Create(&module);
  if (made != NULL && PyModule_AddIntConstant(made, "LOCK_BYTES", (long)sizeof(pthread_mutex_t)) < 0) {
    Py_DECREF(made);
    return NULL;
  }
  return made;
}
