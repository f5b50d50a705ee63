"""``metajit.models`` (also ``jt.models``): image classification models with torchvision's
architectures, constructor arguments and parameter and buffer names, so torchvision state
dicts and ``.pth`` checkpoints load strictly. Weights are never downloaded: see
`metajit.models.pretrained`.

    import metajit as jt
    model = jt.models.resnet18()                      # random initialisation
    model = jt.models.resnet50(pretrained=True)       # resnet50-0676ba61.pth from the local cache
    model.load_state_dict(torchvision_model.state_dict())
"""
from . import ops, pretrained
from .alexnet import *  # noqa: F401,F403
from .convnext import *  # noqa: F401,F403
from .densenet import *  # noqa: F401,F403
from .efficientnet import *  # noqa: F401,F403
from .googlenet import *  # noqa: F401,F403
from .inception import *  # noqa: F401,F403
from .mnasnet import *  # noqa: F401,F403
from .mobilenetv2 import *  # noqa: F401,F403
from .mobilenetv3 import *  # noqa: F401,F403
from .regnet import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .shufflenetv2 import *  # noqa: F401,F403
from .squeezenet import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403
from .vision_transformer import *  # noqa: F401,F403
from .registry import (WeightsEnum, get_model, get_model_builder, get_model_weights, get_weight,  # noqa: F401
                       list_models, weights_enums)

globals().update(weights_enums())  # ResNet50_Weights & co., as torchvision.models exports them
