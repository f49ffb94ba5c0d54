"""Face models: the ICT-FaceKit head as a FLAME-format model, and licensed FLAME models, via smplx."""
