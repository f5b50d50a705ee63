"""PyTorch's ``torch.nn.utils.parameters_to_vector`` / ``vector_to_parameters``: a model's
parameters as one flat Var and back (evolution strategies, second-order methods, weight
averaging)."""
from ...errors import MetajitShapeError, MetajitTypeError
from ...shape_ops import concat
from ...var import Var


def parameters_to_vector(parameters):
    """The parameters (an iterable of Vars, e.g. ``model.parameters()``) flattened and
    joined in order into one 1-d Var, differentiable with respect to each. Example:
    ``flat = parameters_to_vector(model.parameters())``."""
    return concat([parameter.reshape(-1) for parameter in parameters], 0)


def vector_to_parameters(vec, parameters):
    """Set the ``parameters`` (an iterable of Vars) from consecutive slices of the 1-d Var
    ``vec``, each reshaped to its parameter's shape; as PyTorch's ``param.data = ...``,
    the parameters keep their identity and take no gradient history. Example:
    ``vector_to_parameters(flat * 0.5, model.parameters())``."""
    if not isinstance(vec, Var):
        raise MetajitTypeError(f"vector_to_parameters: expected a Var, but got {type(vec).__name__}")
    parameters = list(parameters)
    total = sum(parameter.numel() for parameter in parameters)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise MetajitShapeError(f"vector_to_parameters: vec has shape {tuple(vec.shape)}, the parameters "
                                f"hold {total} values: pass a 1-d Var of that length")
    start = 0
    for parameter in parameters:
        count = parameter.numel()
        parameter.assign(vec[start:start + count].reshape(parameter.shape))
        start += count
