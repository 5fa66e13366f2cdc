"""Online serving: in-process models, online features, the model server and experiments."""
