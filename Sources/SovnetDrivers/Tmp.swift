public enum DriversPlaceholderDeleteMe {}
