/* Runs a sequence of compiled cpu kernels in one call from Python: each launch is
 * (function address, inputs, outputs, packed parameters), where inputs and outputs are
 * buffers with an ``address`` attribute or plain integer addresses. Every address is read
 * first; then the kernels run in order with the GIL released. Optional: without this
 * extension the cpu backend calls each kernel through ctypes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef void (*KernelFunction)(void* const* inputs, void* const* outputs, const void* parameters,
                               long long num_threads);

typedef struct {
  KernelFunction function;
  void** inputs;
  void** outputs;
  const char* parameters;
} Call;

static PyObject* str_address = NULL;

/* The address held by ``item`` (an int, or an object's ``address``); -1 with an error set. */
static int address_of(PyObject* item, void** address) {
  PyObject* value = PyLong_Check(item) ? (Py_INCREF(item), item) : PyObject_GetAttr(item, str_address);
  if (value == NULL) return -1;
  *address = PyLong_AsVoidPtr(value);
  Py_DECREF(value);
  return PyErr_Occurred() ? -1 : 0;
}

/* Reads ``buffers`` (a list or tuple) into ``slots``; returns the count or -1. */
static Py_ssize_t read_addresses(PyObject* buffers, void** slots) {
  if (!PyList_Check(buffers) && !PyTuple_Check(buffers)) {
    PyErr_SetString(PyExc_TypeError, "launch: inputs and outputs must be lists or tuples");
    return -1;
  }
  Py_ssize_t count = PySequence_Fast_GET_SIZE(buffers);
  PyObject** items = PySequence_Fast_ITEMS(buffers);
  for (Py_ssize_t k = 0; k < count; ++k)
    if (address_of(items[k], &slots[k]) < 0) return -1;
  return count;
}

static Py_ssize_t buffer_count(PyObject* buffers) {
  return PyList_Check(buffers) || PyTuple_Check(buffers) ? PySequence_Fast_GET_SIZE(buffers) : 0;
}

/* run(launches, num_threads): run every launch of the list ``launches`` in order. */
static PyObject* run(PyObject* self, PyObject* args) {
  PyObject* launches;
  long long num_threads;
  if (!PyArg_ParseTuple(args, "O!L", &PyList_Type, &launches, &num_threads)) return NULL;
  Py_ssize_t count = PyList_GET_SIZE(launches), slots = 1;
  for (Py_ssize_t k = 0; k < count; ++k) {
    PyObject* launch = PyList_GET_ITEM(launches, k);
    if (!PyTuple_Check(launch) || PyTuple_GET_SIZE(launch) != 4 || !PyBytes_Check(PyTuple_GET_ITEM(launch, 3))) {
      PyErr_SetString(PyExc_TypeError, "launch: each launch must be (address, inputs, outputs, bytes)");
      return NULL;
    }
    /* an empty input list still gets a (null) slot: kernels index their arrays unconditionally */
    slots += buffer_count(PyTuple_GET_ITEM(launch, 1)) + buffer_count(PyTuple_GET_ITEM(launch, 2)) + 2;
  }
  void** addresses = PyMem_Calloc(slots, sizeof(void*));
  Call* calls = PyMem_Calloc(count ? count : 1, sizeof(Call));
  if (addresses == NULL || calls == NULL) {
    PyMem_Free(addresses);
    PyMem_Free(calls);
    return PyErr_NoMemory();
  }
  void** next = addresses;
  for (Py_ssize_t k = 0; k < count; ++k) {
    PyObject* launch = PyList_GET_ITEM(launches, k);
    void* function;
    if (address_of(PyTuple_GET_ITEM(launch, 0), &function) < 0 || function == NULL) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "launch: null kernel address");
      goto error;
    }
    calls[k].function = (KernelFunction)function;
    calls[k].inputs = next;
    Py_ssize_t read = read_addresses(PyTuple_GET_ITEM(launch, 1), next);
    if (read < 0) goto error;
    next += read + 1;
    calls[k].outputs = next;
    read = read_addresses(PyTuple_GET_ITEM(launch, 2), next);
    if (read < 0) goto error;
    next += read + 1;
    calls[k].parameters = PyBytes_AS_STRING(PyTuple_GET_ITEM(launch, 3));
  }
  /* the list (and so every parameter bytes object) stays referenced by the caller; between
     kernels the GIL is taken back briefly to notice Ctrl-C (a signal handler's exception) */
  Py_ssize_t completed = 0;
  int interrupted = 0;
  PyThreadState* state = PyEval_SaveThread();
  while (completed < count) {
    calls[completed].function(calls[completed].inputs, calls[completed].outputs, calls[completed].parameters,
                              num_threads);
    ++completed;
    if (completed < count) {
      PyEval_RestoreThread(state);
      interrupted = PyErr_CheckSignals() < 0;
      state = PyEval_SaveThread();
      if (interrupted) break;
    }
  }
  PyEval_RestoreThread(state);
  PyMem_Free(addresses);
  PyMem_Free(calls);
  if (interrupted) {
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
error:
  PyMem_Free(addresses);
  PyMem_Free(calls);
  return NULL;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS,
     "run(launches, num_threads): call each (address, inputs, outputs, parameters) kernel in order; "
     "an exception from a signal handler (Ctrl-C) between two kernels stops the run and carries "
     "metajit_completed, the number of kernels that finished."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_launch",
                                    "Runs sequences of cpu kernels (see metajit.backends.cpu).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__launch(void) {
  str_address = PyUnicode_InternFromString("address");
  if (str_address == NULL) return NULL;
  return PyModule_Create(&module);
}
