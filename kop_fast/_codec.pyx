# placeholder; the codec issue fills this module
def crc32c(data, unsigned int crc=0):
    raise NotImplementedError
