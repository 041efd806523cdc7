from mobilenetv2.analysis.memory import MemoryReport, Table3Row
from mobilenetv2.analysis.profile import LayerRow, Profile, profile

__all__ = ["LayerRow", "MemoryReport", "Profile", "Table3Row", "profile"]
