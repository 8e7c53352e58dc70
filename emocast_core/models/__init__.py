"""EmoCAST's networks, with the official `net.pth` key names."""
from .denoising_unet import DenoisingUNet
from .face_locator import FaceLocator
from .net import EmoCASTNet
from .projections import AudioProj, ImageProj
from .reference_bank import ReferenceBank
from .reference_net import ReferenceNet

__all__ = ["AudioProj", "DenoisingUNet", "EmoCASTNet", "FaceLocator", "ImageProj", "ReferenceBank", "ReferenceNet"]
