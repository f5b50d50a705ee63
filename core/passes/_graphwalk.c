/* Graph walks of the lazy graph in C: the topological order of the nodes behind a
 * realisation or a gradient, and the structure keys the plan cache and the backward
 * cache look up. metajit.graphwalk calls these when this module is built and runs the
 * same algorithms in Python otherwise; both give identical results (tests check it).
 *
 * Nodes are metajit.graph.Node objects (slots); their fields are read through the
 * slots' member offsets when the object is exactly a Node, else through getattr.
 * Every node reached is kept alive by the caller's targets for the whole call, so the
 * walks hold borrowed references.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

enum { F_OP, F_INPUTS, F_ATTRS, F_SHAPE, F_DTYPE, F_BUFFER, F_HOST_DATA, F_REQUIRES_GRAD,
       F_GRAD_BOUNDARY, F_HOLDER, F_COUNT };
static const char* FIELD_NAMES[F_COUNT] = {"op", "inputs", "attrs", "shape", "dtype", "buffer",
                                           "host_data", "requires_grad", "grad_boundary", "holder"};
static PyObject* field_names[F_COUNT];
static Py_ssize_t field_offsets[F_COUNT];
static PyTypeObject* node_type = NULL;
static PyObject* str_constant = NULL;
static PyObject* str_node = NULL; /* "_node", the field of a Var naming its node */

/* A borrowed field of ``node``, or NULL with an exception set. */
static PyObject* field(PyObject* node, int which) {
  if (Py_TYPE(node) == node_type) {
    PyObject* value = *(PyObject**)((char*)node + field_offsets[which]);
    if (value != NULL) return value;
  }
  PyObject* value = PyObject_GetAttr(node, field_names[which]);
  if (value == NULL) return NULL;
  Py_DECREF(value); /* the node keeps its own reference */
  return value;
}

/* ---- an open-addressing map from node pointers to positions ---------------------- */
typedef struct {
  PyObject** keys;
  Py_ssize_t* values;
  Py_ssize_t capacity; /* a power of two */
  Py_ssize_t count;
} NodeMap;

static void map_free(NodeMap* map) {
  PyMem_Free(map->keys);
  PyMem_Free(map->values);
}

static int map_init(NodeMap* map, Py_ssize_t expected) {
  Py_ssize_t capacity = 64;
  while (capacity < 2 * expected) capacity <<= 1;
  map->keys = PyMem_Calloc(capacity, sizeof(PyObject*));
  map->values = PyMem_Malloc(capacity * sizeof(Py_ssize_t));
  map->capacity = capacity;
  map->count = 0;
  if (map->keys == NULL || map->values == NULL) {
    map_free(map);
    map->keys = NULL;
    map->values = NULL;
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}

static Py_ssize_t map_slot(const NodeMap* map, PyObject* key) {
  size_t hash = ((size_t)key >> 4) * (size_t)0x9E3779B97F4A7C15ull;
  Py_ssize_t mask = map->capacity - 1, slot = (Py_ssize_t)(hash >> 7) & mask;
  while (map->keys[slot] != NULL && map->keys[slot] != key) slot = (slot + 1) & mask;
  return slot;
}

/* The position of ``key``, or -1. */
static Py_ssize_t map_get(const NodeMap* map, PyObject* key) {
  Py_ssize_t slot = map_slot(map, key);
  return map->keys[slot] == NULL ? -1 : map->values[slot];
}

static int map_put(NodeMap* map, PyObject* key, Py_ssize_t value) {
  if (2 * (map->count + 1) > map->capacity) {
    NodeMap bigger;
    if (map_init(&bigger, map->capacity) < 0) return -1;
    for (Py_ssize_t k = 0; k < map->capacity; ++k)
      if (map->keys[k] != NULL) {
        Py_ssize_t slot = map_slot(&bigger, map->keys[k]);
        bigger.keys[slot] = map->keys[k];
        bigger.values[slot] = map->values[k];
        bigger.count++;
      }
    map_free(map);
    *map = bigger;
  }
  Py_ssize_t slot = map_slot(map, key);
  if (map->keys[slot] == NULL) map->count++;
  map->keys[slot] = key;
  map->values[slot] = value;
  return 0;
}

/* Put every item of the PySequence_Fast ``items`` in ``map`` (value 1), as a set of nodes. */
static int map_put_all(NodeMap* map, PyObject* items) {
  for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(items); ++k)
    if (map_put(map, PySequence_Fast_ITEMS(items)[k], 1) < 0) return -1;
  return 0;
}

/* ---- a growable stack of borrowed pointers --------------------------------------- */
typedef struct {
  PyObject** items;
  Py_ssize_t size, capacity;
} Stack;

/* Room for one more item in a growable array of ``item_size``-byte items (doubling). */
static int reserve_one(void** items, Py_ssize_t size, Py_ssize_t* capacity, size_t item_size) {
  if (size < *capacity) return 0;
  Py_ssize_t grown_capacity = *capacity ? 2 * *capacity : 256;
  void* grown = PyMem_Realloc(*items, grown_capacity * item_size);
  if (grown == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  *items = grown;
  *capacity = grown_capacity;
  return 0;
}

static int stack_push(Stack* stack, PyObject* item) {
  if (reserve_one((void**)&stack->items, stack->size, &stack->capacity, sizeof(PyObject*)) < 0) return -1;
  stack->items[stack->size++] = item;
  return 0;
}

/* ---- boundaries ------------------------------------------------------------------ */
enum { STOP_AT_REALISED = 0, STOP_AT_NO_GRAD = 1 };

/* 1 when the walk does not descend below ``node``, 0 when it does, -1 on error. */
static int is_boundary(PyObject* node, int mode, PyObject* stop_ids) {
  if (mode == STOP_AT_REALISED) {
    PyObject* buffer = field(node, F_BUFFER);
    if (buffer == NULL) return -1;
    if (buffer != Py_None) return 1;
    PyObject* host_data = field(node, F_HOST_DATA);
    if (host_data == NULL) return -1;
    return host_data != Py_None;
  }
  PyObject* requires_grad = field(node, F_REQUIRES_GRAD);
  if (requires_grad == NULL) return -1;
  int truth = PyObject_IsTrue(requires_grad);
  if (truth <= 0) return truth < 0 ? -1 : 1;
  PyObject* grad_boundary = field(node, F_GRAD_BOUNDARY);
  if (grad_boundary == NULL) return -1;
  truth = PyObject_IsTrue(grad_boundary);
  if (truth != 0) return truth < 0 ? -1 : 1;
  if (stop_ids != NULL && PySet_GET_SIZE(stop_ids) > 0) {
    PyObject* id = PyLong_FromVoidPtr(node);
    if (id == NULL) return -1;
    int stopped = PySet_Contains(stop_ids, id);
    Py_DECREF(id);
    return stopped;
  }
  return 0;
}

static PyObject* inputs_of(PyObject* node) {
  PyObject* inputs = field(node, F_INPUTS);
  if (inputs != NULL && !PyTuple_Check(inputs)) {
    PyErr_SetString(PyExc_TypeError, "graphwalk: Node.inputs must be a tuple");
    return NULL;
  }
  return inputs;
}

/* topological_order(targets, mode, stop_ids) -> list, inputs first. */
static PyObject* topological_order(PyObject* self, PyObject* args) {
  PyObject *targets, *stop_ids;
  int mode;
  if (!PyArg_ParseTuple(args, "OiO", &targets, &mode, &stop_ids)) return NULL;
  PyObject* sequence = PySequence_Fast(targets, "graphwalk: targets must be a sequence");
  if (sequence == NULL) return NULL;
  if (stop_ids == Py_None) stop_ids = NULL;
  else if (!PyAnySet_Check(stop_ids)) {
    Py_DECREF(sequence);
    PyErr_SetString(PyExc_TypeError, "graphwalk: stop_ids must be a set or None");
    return NULL;
  }
  PyObject* order = PyList_New(0);
  NodeMap visited;
  Stack stack = {NULL, 0, 0}, finishing = {NULL, 0, 0};
  if (order == NULL || map_init(&visited, 256) < 0) {
    Py_XDECREF(order);
    Py_DECREF(sequence);
    return NULL;
  }
  Py_ssize_t target_count = PySequence_Fast_GET_SIZE(sequence);
  PyObject** target_items = PySequence_Fast_ITEMS(sequence);
  for (Py_ssize_t t = 0; t < target_count; ++t) {
    if (map_get(&visited, target_items[t]) >= 0) continue;
    if (stack_push(&stack, target_items[t]) < 0) goto error;
    while (stack.size) {
      PyObject* node = stack.items[--stack.size];
      if (node == NULL) { /* every input of the node on top of `finishing` is placed */
        if (PyList_Append(order, finishing.items[--finishing.size]) < 0) goto error;
        continue;
      }
      if (map_get(&visited, node) >= 0) continue;
      if (map_put(&visited, node, 1) < 0 || stack_push(&stack, NULL) < 0 ||
          stack_push(&finishing, node) < 0)
        goto error;
      int boundary = is_boundary(node, mode, stop_ids);
      if (boundary < 0) goto error;
      if (boundary) continue;
      PyObject* inputs = inputs_of(node);
      if (inputs == NULL) goto error;
      for (Py_ssize_t k = PyTuple_GET_SIZE(inputs) - 1; k >= 0; --k) {
        PyObject* source = PyTuple_GET_ITEM(inputs, k);
        if (map_get(&visited, source) < 0 && stack_push(&stack, source) < 0) goto error;
      }
    }
  }
  map_free(&visited);
  PyMem_Free(stack.items);
  PyMem_Free(finishing.items);
  Py_DECREF(sequence);
  return order;
error:
  map_free(&visited);
  PyMem_Free(stack.items);
  PyMem_Free(finishing.items);
  Py_DECREF(sequence);
  Py_DECREF(order);
  return NULL;
}

/* A new tuple of the positions of ``inputs`` (each must be placed). */
static PyObject* input_positions(const NodeMap* position, PyObject* inputs) {
  Py_ssize_t count = PyTuple_GET_SIZE(inputs);
  PyObject* positions = PyTuple_New(count);
  if (positions == NULL) return NULL;
  for (Py_ssize_t k = 0; k < count; ++k) {
    Py_ssize_t at = map_get(position, PyTuple_GET_ITEM(inputs, k));
    if (at < 0) {
      Py_DECREF(positions);
      PyErr_SetString(PyExc_ValueError, "graphwalk: an input comes after its consumer in the order");
      return NULL;
    }
    PyObject* value = PyLong_FromSsize_t(at);
    if (value == NULL) {
      Py_DECREF(positions);
      return NULL;
    }
    PyTuple_SET_ITEM(positions, k, value);
  }
  return positions;
}

/* (tuple of each target's position, or -1 / an error when absent and ``required``). */
static PyObject* target_positions(const NodeMap* position, PyObject* targets, int required) {
  PyObject* sequence = PySequence_Fast(targets, "graphwalk: targets must be a sequence");
  if (sequence == NULL) return NULL;
  Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
  PyObject* result = PyTuple_New(count);
  for (Py_ssize_t k = 0; result != NULL && k < count; ++k) {
    Py_ssize_t at = map_get(position, PySequence_Fast_GET_ITEM(sequence, k));
    if (at < 0 && required) {
      PyErr_SetString(PyExc_ValueError, "graphwalk: a target is not in the order");
      Py_CLEAR(result);
      break;
    }
    PyObject* value = PyLong_FromSsize_t(at);
    if (value == NULL) {
      Py_CLEAR(result);
      break;
    }
    PyTuple_SET_ITEM(result, k, value);
  }
  Py_DECREF(sequence);
  return result;
}

/* Checks that ``order_list`` is a list and readies ``position`` for its nodes; returns
 * its length, or -1 with an exception set. */
static Py_ssize_t begin_order_walk(PyObject* order_list, NodeMap* position) {
  if (!PyList_Check(order_list)) {
    PyErr_SetString(PyExc_TypeError, "graphwalk: order must be a list");
    return -1;
  }
  Py_ssize_t count = PyList_GET_SIZE(order_list);
  return map_init(position, count) < 0 ? -1 : count;
}

typedef PyObject* (*EntryBuilder)(PyObject* node, const NodeMap* position);

/* ``(tuple of build(node) over order, target positions)``: the shared skeleton of both keys. */
static PyObject* structure(PyObject* order_list, PyObject* targets, EntryBuilder build, int required) {
  NodeMap position;
  Py_ssize_t count = begin_order_walk(order_list, &position);
  if (count < 0) return NULL;
  PyObject* entries = PyTuple_New(count);
  PyObject* result = NULL;
  if (entries == NULL) goto done;
  for (Py_ssize_t k = 0; k < count; ++k) {
    PyObject* node = PyList_GET_ITEM(order_list, k);
    PyObject* entry = build(node, &position);
    if (entry == NULL) goto done;
    PyTuple_SET_ITEM(entries, k, entry);
    if (map_put(&position, node, k) < 0) goto done;
  }
  PyObject* where = target_positions(&position, targets, required);
  if (where == NULL) goto done;
  result = PyTuple_Pack(2, entries, where);
  Py_DECREF(where);
done:
  Py_XDECREF(entries);
  map_free(&position);
  return result;
}

static int is_constant_op(PyObject* op) {
  return PyUnicode_Check(op) && PyUnicode_Compare(op, str_constant) == 0;
}

static PyObject* plan_entry(PyObject* node, const NodeMap* position) {
  PyObject* buffer = field(node, F_BUFFER);
  PyObject* host_data = buffer ? field(node, F_HOST_DATA) : NULL;
  PyObject* shape = host_data ? field(node, F_SHAPE) : NULL;
  PyObject* dtype = shape ? field(node, F_DTYPE) : NULL;
  PyObject* op = dtype ? field(node, F_OP) : NULL;
  if (op == NULL) return NULL;
  if (buffer != Py_None || host_data != Py_None)
    return PyTuple_Pack(3, buffer == Py_None ? Py_True : Py_False, shape, dtype);
  if (is_constant_op(op)) return PyTuple_Pack(2, str_constant, dtype);
  PyObject* attrs = field(node, F_ATTRS);
  PyObject* inputs = attrs ? inputs_of(node) : NULL;
  PyObject* positions = inputs ? input_positions(position, inputs) : NULL;
  if (positions == NULL) return NULL;
  PyObject* entry = PyTuple_Pack(5, op, attrs, shape, dtype, positions);
  Py_DECREF(positions);
  return entry;
}

/* ---- the compact plan key --------------------------------------------------------- */
/* Op and dtype objects by identity -> small numbers, each object kept alive by the table
 * (so an address never names two objects); equal objects that are not the same object get
 * different numbers, which only costs a plan-cache miss. */
static NodeMap interned = {NULL, NULL, 0, 0};

static Py_ssize_t intern_number(PyObject* object) {
  if (interned.keys == NULL && map_init(&interned, 64) < 0) return -1;
  Py_ssize_t number = map_get(&interned, object);
  if (number >= 0) return number;
  number = interned.count;
  if (map_put(&interned, object, number) < 0) return -1;
  Py_INCREF(object);
  return number;
}

typedef struct {
  long long* words;
  Py_ssize_t size, capacity;
} Words;

static int words_push(Words* words, long long value) {
  if (reserve_one((void**)&words->words, words->size, &words->capacity, sizeof(long long)) < 0) return -1;
  words->words[words->size++] = value;
  return 0;
}

static int push_shape(Words* words, PyObject* shape) {
  if (!PyTuple_Check(shape)) {
    PyErr_SetString(PyExc_TypeError, "graphwalk: Node.shape must be a tuple");
    return -1;
  }
  Py_ssize_t ndim = PyTuple_GET_SIZE(shape);
  if (words_push(words, ndim) < 0) return -1;
  for (Py_ssize_t d = 0; d < ndim; ++d) {
    long long size = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, d));
    if (size == -1 && PyErr_Occurred()) return -1;
    if (words_push(words, size) < 0) return -1;
  }
  return 0;
}

enum { KEY_ON_DEVICE = 1, KEY_ON_HOST, KEY_CONSTANT, KEY_NODE };

/* One node's words (and its attrs, when not empty, appended to ``attrs``). */
static int plan_key_entry(PyObject* node, const NodeMap* position, Words* words, PyObject* attrs_list) {
  PyObject* buffer = field(node, F_BUFFER);
  PyObject* host_data = buffer ? field(node, F_HOST_DATA) : NULL;
  PyObject* shape = host_data ? field(node, F_SHAPE) : NULL;
  PyObject* dtype = shape ? field(node, F_DTYPE) : NULL;
  PyObject* op = dtype ? field(node, F_OP) : NULL;
  if (op == NULL) return -1;
  Py_ssize_t dtype_number = intern_number(dtype);
  if (dtype_number < 0) return -1;
  if (buffer != Py_None || host_data != Py_None) {
    if (words_push(words, buffer == Py_None ? KEY_ON_HOST : KEY_ON_DEVICE) < 0 ||
        words_push(words, dtype_number) < 0)
      return -1;
    return push_shape(words, shape);
  }
  if (is_constant_op(op)) {
    if (words_push(words, KEY_CONSTANT) < 0 || words_push(words, dtype_number) < 0) return -1;
    return 0;
  }
  Py_ssize_t op_number = intern_number(op);
  PyObject* attrs = op_number >= 0 ? field(node, F_ATTRS) : NULL;
  PyObject* inputs = attrs ? inputs_of(node) : NULL;
  if (inputs == NULL) return -1;
  if (words_push(words, KEY_NODE) < 0 || words_push(words, op_number) < 0 ||
      words_push(words, dtype_number) < 0 || push_shape(words, shape) < 0)
    return -1;
  Py_ssize_t count = PyTuple_GET_SIZE(inputs);
  if (words_push(words, count) < 0) return -1;
  for (Py_ssize_t k = 0; k < count; ++k) {
    Py_ssize_t at = map_get(position, PyTuple_GET_ITEM(inputs, k));
    if (at < 0) {
      PyErr_SetString(PyExc_ValueError, "graphwalk: an input comes after its consumer in the order");
      return -1;
    }
    if (words_push(words, at) < 0) return -1;
  }
  int empty = PyTuple_Check(attrs) && PyTuple_GET_SIZE(attrs) == 0;
  if (words_push(words, empty ? -1 : PyList_GET_SIZE(attrs_list)) < 0) return -1;
  return empty ? 0 : PyList_Append(attrs_list, attrs);
}

/* plan_key(order, targets) -> (structure bytes, attrs tuple, target positions): the plan
 * cache's key as bytes (compared with memcmp, hashed once) and the attrs of the nodes
 * that have any (compared as objects, never hashed), instead of a tuple per node. */
static PyObject* plan_key(PyObject* self, PyObject* args) {
  PyObject *order_list, *targets;
  if (!PyArg_ParseTuple(args, "OO", &order_list, &targets)) return NULL;
  NodeMap position;
  Py_ssize_t count = begin_order_walk(order_list, &position);
  if (count < 0) return NULL;
  Words words = {NULL, 0, 0};
  PyObject* attrs_list = PyList_New(0);
  PyObject* result = NULL;
  if (attrs_list == NULL) goto done;
  for (Py_ssize_t k = 0; k < count; ++k) {
    PyObject* node = PyList_GET_ITEM(order_list, k);
    if (plan_key_entry(node, &position, &words, attrs_list) < 0 || map_put(&position, node, k) < 0) goto done;
  }
  PyObject* where = target_positions(&position, targets, 1);
  PyObject* structure = where ? PyBytes_FromStringAndSize((const char*)words.words,
                                                          words.size * (Py_ssize_t)sizeof(long long))
                              : NULL;
  PyObject* attrs = structure ? PyList_AsTuple(attrs_list) : NULL;
  if (attrs != NULL) result = PyTuple_Pack(3, structure, attrs, where);
  Py_XDECREF(where);
  Py_XDECREF(structure);
  Py_XDECREF(attrs);
done:
  Py_XDECREF(attrs_list);
  PyMem_Free(words.words);
  map_free(&position);
  return result;
}

/* structure() for the (order, targets) arguments ``args``. */
static PyObject* structure_of_arguments(PyObject* args, EntryBuilder build, int required) {
  PyObject *order, *targets;
  if (!PyArg_ParseTuple(args, "OO", &order, &targets)) return NULL;
  return structure(order, targets, build, required);
}

/* plan_structure(order, targets) -> (entries, target positions): fusion's plan-cache key. */
static PyObject* plan_structure(PyObject* self, PyObject* args) {
  return structure_of_arguments(args, plan_entry, 1);
}

static PyObject* grad_entry(PyObject* node, const NodeMap* position) {
  PyObject* op = field(node, F_OP);
  PyObject* attrs = op ? field(node, F_ATTRS) : NULL;
  PyObject* shape = attrs ? field(node, F_SHAPE) : NULL;
  PyObject* dtype = shape ? field(node, F_DTYPE) : NULL;
  PyObject* requires_grad = dtype ? field(node, F_REQUIRES_GRAD) : NULL;
  PyObject* grad_boundary = requires_grad ? field(node, F_GRAD_BOUNDARY) : NULL;
  PyObject* inputs = grad_boundary ? inputs_of(node) : NULL;
  if (inputs == NULL) return NULL;
  int requires = PyObject_IsTrue(requires_grad), bounded = PyObject_IsTrue(grad_boundary);
  if (requires < 0 || bounded < 0) return NULL;
  PyObject* edges = requires && !bounded ? input_positions(position, inputs)
                                         : PyLong_FromSsize_t(PyTuple_GET_SIZE(inputs));
  if (edges == NULL) return NULL;
  PyObject* entry = PyTuple_Pack(7, op, is_constant_op(op) ? Py_None : attrs, shape, dtype, requires_grad,
                                 grad_boundary, edges);
  Py_DECREF(edges);
  return entry;
}

/* grad_structure(order, targets) -> (entries, target positions or -1): the backward-cache key. */
static PyObject* grad_structure(PyObject* self, PyObject* args) {
  return structure_of_arguments(args, grad_entry, 0);
}

/* A new Node with every slot set from the borrowed ``values`` (indexed by field). */
static PyObject* new_node(PyObject* const* values) {
  PyObject* node = node_type->tp_alloc(node_type, 0);
  if (node == NULL) return NULL;
  for (int k = 0; k < F_COUNT; ++k) {
    Py_INCREF(values[k]);
    *(PyObject**)((char*)node + field_offsets[k]) = values[k];
  }
  return node;
}

/* instantiate(entries, pool): append to the list ``pool`` one new Node per entry
 * (op, input positions in pool, attrs, shape, dtype, requires_grad, grad_boundary). */
static PyObject* instantiate(PyObject* self, PyObject* args) {
  PyObject *entries, *pool;
  if (!PyArg_ParseTuple(args, "O!O!", &PyTuple_Type, &entries, &PyList_Type, &pool)) return NULL;
  if (node_type == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "graphwalk: set_node_type was not called");
    return NULL;
  }
  for (Py_ssize_t e = 0; e < PyTuple_GET_SIZE(entries); ++e) {
    PyObject* entry = PyTuple_GET_ITEM(entries, e);
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 7 || !PyTuple_Check(PyTuple_GET_ITEM(entry, 1))) {
      PyErr_SetString(PyExc_TypeError, "graphwalk: a template entry must be a 7-tuple with a tuple of inputs");
      return NULL;
    }
    PyObject* slots = PyTuple_GET_ITEM(entry, 1);
    Py_ssize_t count = PyTuple_GET_SIZE(slots);
    PyObject* inputs = PyTuple_New(count);
    if (inputs == NULL) return NULL;
    for (Py_ssize_t k = 0; k < count; ++k) {
      Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(slots, k));
      if (at < 0 || at >= PyList_GET_SIZE(pool)) {
        Py_DECREF(inputs);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_IndexError, "graphwalk: template input out of range");
        return NULL;
      }
      PyObject* source = PyList_GET_ITEM(pool, at);
      Py_INCREF(source);
      PyTuple_SET_ITEM(inputs, k, source);
    }
    PyObject* values[F_COUNT];
    values[F_OP] = PyTuple_GET_ITEM(entry, 0);
    values[F_INPUTS] = inputs;
    values[F_ATTRS] = PyTuple_GET_ITEM(entry, 2);
    values[F_SHAPE] = PyTuple_GET_ITEM(entry, 3);
    values[F_DTYPE] = PyTuple_GET_ITEM(entry, 4);
    values[F_BUFFER] = Py_None;
    values[F_HOST_DATA] = Py_None;
    values[F_REQUIRES_GRAD] = PyTuple_GET_ITEM(entry, 5);
    values[F_GRAD_BOUNDARY] = PyTuple_GET_ITEM(entry, 6);
    values[F_HOLDER] = Py_None;
    PyObject* node = new_node(values);
    Py_DECREF(inputs);
    if (node == NULL || PyList_Append(pool, node) < 0) {
      Py_XDECREF(node);
      return NULL;
    }
    Py_DECREF(node);
  }
  Py_RETURN_NONE;
}

/* positions_of(order, nodes) -> list: the position of each of ``nodes`` in ``order``
 * (its first), -1 for one not in it. One scan of the order against a map of the few
 * nodes asked about. */
static PyObject* positions_of(PyObject* self, PyObject* args) {
  PyObject *order_arg, *nodes_arg;
  if (!PyArg_ParseTuple(args, "OO", &order_arg, &nodes_arg)) return NULL;
  PyObject* order = PySequence_Fast(order_arg, "graphwalk: order must be a sequence");
  PyObject* nodes = order ? PySequence_Fast(nodes_arg, "graphwalk: nodes must be a sequence") : NULL;
  PyObject* result = NULL;
  NodeMap asked = {NULL, NULL, 0, 0};
  Py_ssize_t* found = NULL;
  if (nodes == NULL) goto done;
  Py_ssize_t count = PySequence_Fast_GET_SIZE(nodes);
  PyObject** items = PySequence_Fast_ITEMS(nodes);
  found = PyMem_Malloc((count ? count : 1) * sizeof(Py_ssize_t));
  if (found == NULL) {
    PyErr_NoMemory();
    goto done;
  }
  if (map_init(&asked, count) < 0) goto done;
  for (Py_ssize_t k = 0; k < count; ++k) {
    found[k] = -1;
    if (map_get(&asked, items[k]) < 0 && map_put(&asked, items[k], k) < 0) goto done;
  }
  Py_ssize_t size = PySequence_Fast_GET_SIZE(order);
  PyObject** walked = PySequence_Fast_ITEMS(order);
  for (Py_ssize_t n = 0; n < size; ++n) {
    Py_ssize_t k = map_get(&asked, walked[n]);
    if (k >= 0 && found[k] < 0) found[k] = n;
  }
  result = PyList_New(count);
  if (result == NULL) goto done;
  for (Py_ssize_t k = 0; k < count; ++k) {
    Py_ssize_t first = map_get(&asked, items[k]); /* a node asked twice: its first entry */
    PyObject* value = PyLong_FromSsize_t(found[first]);
    if (value == NULL) {
      Py_CLEAR(result);
      goto done;
    }
    PyList_SET_ITEM(result, k, value);
  }
done:
  map_free(&asked);
  PyMem_Free(found);
  Py_XDECREF(order);
  Py_XDECREF(nodes);
  return result;
}

/* held_values(order, donated, targets) -> (held, readers): the nodes of ``order``
 * computed from a ``donated`` node, other than the ``targets``, whose reference count is
 * more than the order's reference plus one per input slot of the order's nodes holding
 * them (something outside the graph holds them), in order; and {id(leaf): such input
 * slots} for every donated leaf. metajit.donation documents the counting. */
static PyObject* held_values(PyObject* self, PyObject* args) {
  PyObject *order_arg, *donated_arg, *targets_arg;
  if (!PyArg_ParseTuple(args, "OOO", &order_arg, &donated_arg, &targets_arg)) return NULL;
  PyObject* order = PySequence_Fast(order_arg, "graphwalk: order must be a sequence");
  PyObject* donated = order ? PySequence_Fast(donated_arg, "graphwalk: donated must be a sequence") : NULL;
  PyObject* targets = donated ? PySequence_Fast(targets_arg, "graphwalk: targets must be a sequence") : NULL;
  PyObject *held = NULL, *readers_of_donated = NULL;
  NodeMap readers = {NULL, NULL, 0, 0}, dependent = {NULL, NULL, 0, 0}, target_set = {NULL, NULL, 0, 0};
  if (targets == NULL) goto done;
  Py_ssize_t count = PySequence_Fast_GET_SIZE(order);
  PyObject** nodes = PySequence_Fast_ITEMS(order);
  if (map_init(&readers, 2 * count) < 0 || map_init(&dependent, count) < 0 ||
      map_init(&target_set, PySequence_Fast_GET_SIZE(targets)) < 0)
    goto done;
  for (Py_ssize_t n = 0; n < count; ++n) {
    PyObject* inputs = inputs_of(nodes[n]);
    if (inputs == NULL) goto done;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(inputs); ++k) {
      PyObject* source = PyTuple_GET_ITEM(inputs, k);
      Py_ssize_t seen = map_get(&readers, source);
      if (map_put(&readers, source, seen < 0 ? 1 : seen + 1) < 0) goto done;
    }
  }
  if (map_put_all(&dependent, donated) < 0 || map_put_all(&target_set, targets) < 0) goto done;
  held = PyList_New(0);
  if (held == NULL) goto done;
  for (Py_ssize_t n = 0; n < count; ++n) {
    PyObject* node = nodes[n];
    PyObject* inputs = inputs_of(node);
    if (inputs == NULL) goto fail;
    int computed_from_donated = 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(inputs) && !computed_from_donated; ++k)
      computed_from_donated = map_get(&dependent, PyTuple_GET_ITEM(inputs, k)) >= 0;
    if (!computed_from_donated) continue;
    if (map_put(&dependent, node, 1) < 0) goto fail;
    Py_ssize_t slots = map_get(&readers, node);
    if (Py_REFCNT(node) != 1 + (slots < 0 ? 0 : slots) && map_get(&target_set, node) < 0 &&
        PyList_Append(held, node) < 0)
      goto fail;
  }
  readers_of_donated = PyDict_New();
  if (readers_of_donated == NULL) goto fail;
  for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(donated); ++k) {
    PyObject* leaf = PySequence_Fast_ITEMS(donated)[k];
    Py_ssize_t slots = map_get(&readers, leaf);
    PyObject* key = PyLong_FromVoidPtr(leaf);
    PyObject* value = key ? PyLong_FromSsize_t(slots < 0 ? 0 : slots) : NULL;
    int failed = value == NULL || PyDict_SetItem(readers_of_donated, key, value) < 0;
    Py_XDECREF(key);
    Py_XDECREF(value);
    if (failed) goto fail;
  }
  goto done;
fail:
  Py_CLEAR(held);
  Py_CLEAR(readers_of_donated);
done:
  map_free(&readers);
  map_free(&dependent);
  map_free(&target_set);
  Py_XDECREF(order);
  Py_XDECREF(donated);
  Py_XDECREF(targets);
  if (held == NULL || readers_of_donated == NULL) {
    Py_XDECREF(held);
    Py_XDECREF(readers_of_donated);
    return NULL;
  }
  return Py_BuildValue("(NN)", held, readers_of_donated);
}

/* 1 when a live Var refers to ``node`` (the object of its ``holder`` weak reference, whose
 * ``_node`` is ``node``), 0 when none does or the holder is unset, -1 on error. */
static int held_by_a_var(PyObject* node) {
  PyObject* holder;
  if (Py_TYPE(node) == node_type) {
    holder = *(PyObject**)((char*)node + field_offsets[F_HOLDER]);
    if (holder == NULL) return 0; /* a node made without __init__ */
    Py_INCREF(holder);
  } else {
    holder = PyObject_GetAttr(node, field_names[F_HOLDER]);
    if (holder == NULL) {
      if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
      PyErr_Clear();
      return 0;
    }
  }
  int held = 0;
  if (PyWeakref_Check(holder)) {
#if PY_VERSION_HEX >= 0x030D0000
    PyObject* var;
    int alive = PyWeakref_GetRef(holder, &var); /* a new reference; 0 once the Var died */
#else
    PyObject* var = PyWeakref_GetObject(holder); /* borrowed; None once the Var died */
    int alive = var == NULL ? -1 : var != Py_None;
    if (alive > 0) Py_INCREF(var);
#endif
    if (alive < 0) {
      held = -1;
    } else if (alive) {
      PyObject* current = PyObject_GetAttr(var, str_node);
      held = current == NULL ? -1 : current == node;
      Py_XDECREF(current);
      Py_DECREF(var);
    }
  }
  Py_DECREF(holder);
  return held;
}

/* held_results(order, targets, stored_ops) -> list: the unrealised nodes of ``order``,
 * other than ``targets``, that a live Var refers to and that are computed from an
 * unrealised node whose op is in the tuple ``stored_ops`` (such nodes included), in
 * order. metajit.executor keeps their values (see its _held_results). */
static PyObject* held_results(PyObject* self, PyObject* args) {
  PyObject *order_arg, *targets_arg, *stored_ops;
  if (!PyArg_ParseTuple(args, "OOO!", &order_arg, &targets_arg, &PyTuple_Type, &stored_ops)) return NULL;
  PyObject* order = PySequence_Fast(order_arg, "graphwalk: order must be a sequence");
  PyObject* targets = order ? PySequence_Fast(targets_arg, "graphwalk: targets must be a sequence") : NULL;
  PyObject* held = NULL;
  NodeMap downstream = {NULL, NULL, 0, 0}, target_set = {NULL, NULL, 0, 0};
  if (targets == NULL) goto done;
  Py_ssize_t count = PySequence_Fast_GET_SIZE(order);
  PyObject** nodes = PySequence_Fast_ITEMS(order);
  if (map_init(&downstream, count) < 0 || map_init(&target_set, PySequence_Fast_GET_SIZE(targets)) < 0 ||
      map_put_all(&target_set, targets) < 0)
    goto done;
  held = PyList_New(0);
  if (held == NULL) goto done;
  for (Py_ssize_t n = 0; n < count; ++n) {
    PyObject* node = nodes[n];
    PyObject* buffer = field(node, F_BUFFER);
    if (buffer == NULL) goto fail;
    if (buffer != Py_None) continue;
    PyObject* op = field(node, F_OP);
    if (op == NULL) goto fail;
    int computed = PySequence_Contains(stored_ops, op);
    if (computed < 0) goto fail;
    if (!computed) {
      PyObject* inputs = inputs_of(node);
      if (inputs == NULL) goto fail;
      for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(inputs) && !computed; ++k)
        computed = map_get(&downstream, PyTuple_GET_ITEM(inputs, k)) >= 0;
      if (!computed) continue;
    }
    if (map_put(&downstream, node, 1) < 0) goto fail;
    if (map_get(&target_set, node) >= 0) continue;
    int by_var = held_by_a_var(node);
    if (by_var < 0 || (by_var && PyList_Append(held, node) < 0)) goto fail;
  }
  goto done;
fail:
  Py_CLEAR(held);
done:
  map_free(&downstream);
  map_free(&target_set);
  Py_XDECREF(order);
  Py_XDECREF(targets);
  return held;
}

/* set_node_type(Node): learn the slot offsets of the Node class. */
static PyObject* set_node_type(PyObject* self, PyObject* type) {
  if (!PyType_Check(type)) {
    PyErr_SetString(PyExc_TypeError, "graphwalk: set_node_type needs a class");
    return NULL;
  }
  for (int k = 0; k < F_COUNT; ++k) {
    PyObject* descriptor = PyObject_GetAttr(type, field_names[k]);
    if (descriptor == NULL) return NULL;
    int is_member = Py_IS_TYPE(descriptor, &PyMemberDescr_Type);
    if (is_member) {
      PyMemberDef* member = ((PyMemberDescrObject*)descriptor)->d_member;
      is_member = member->type == T_OBJECT_EX;
      field_offsets[k] = member->offset;
    }
    Py_DECREF(descriptor);
    if (!is_member) {
      PyErr_Format(PyExc_TypeError, "graphwalk: %s is not a slot of the Node class", FIELD_NAMES[k]);
      return NULL;
    }
  }
  Py_XINCREF(type);
  Py_XSETREF(node_type, (PyTypeObject*)type);
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"topological_order", topological_order, METH_VARARGS,
     "topological_order(targets, mode, stop_ids): nodes behind targets, inputs first; mode 0 "
     "stops at realised nodes, 1 at nodes gradients do not pass (or whose id is in stop_ids)."},
    {"plan_structure", plan_structure, METH_VARARGS,
     "plan_structure(order, targets): (entries, target positions) of the plan-cache key."},
    {"plan_key", plan_key, METH_VARARGS,
     "plan_key(order, targets): (structure bytes, attrs tuple, target positions) of the plan-cache key."},
    {"grad_structure", grad_structure, METH_VARARGS,
     "grad_structure(order, targets): (entries, target positions or -1) of the backward key."},
    {"instantiate", instantiate, METH_VARARGS,
     "instantiate(entries, pool): append a new Node per backward-template entry to pool."},
    {"positions_of", positions_of, METH_VARARGS,
     "positions_of(order, nodes): the position of each node in order, -1 for one not in it."},
    {"held_values", held_values, METH_VARARGS,
     "held_values(order, donated, targets): (held nodes, {id(donated leaf): reading input slots})."},
    {"held_results", held_results, METH_VARARGS,
     "held_results(order, targets, stored_ops): unrealised nodes a live Var holds, computed from a stored op."},
    {"set_node_type", set_node_type, METH_O, "set_node_type(Node): read Node slots directly."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_graphwalk",
                                    "Graph walks of the lazy graph (see metajit.graphwalk).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__graphwalk(void) {
  for (int k = 0; k < F_COUNT; ++k) {
    field_names[k] = PyUnicode_InternFromString(FIELD_NAMES[k]);
    if (field_names[k] == NULL) return NULL;
  }
  str_constant = PyUnicode_InternFromString("constant");
  if (str_constant == NULL) return NULL;
  str_node = PyUnicode_InternFromString("_node");
  if (str_node == NULL) return NULL;
  return PyModule_Create(&module);
}
